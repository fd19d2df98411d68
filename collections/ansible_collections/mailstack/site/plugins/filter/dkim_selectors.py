# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dkim_selectors filter (documented in dkim_selectors.yml beside this file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.dns import dkim_selectors


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"dkim_selectors": dkim_selectors}
