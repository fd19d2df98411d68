# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dns_records filter (documented in dns_records.yml beside this file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.dns import dns_records


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"dns_records": dns_records}
