# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The numbered_addresses filter (documented in numbered_addresses.yml beside this file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.addresses import numbered_addresses


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"numbered_addresses": numbered_addresses}
