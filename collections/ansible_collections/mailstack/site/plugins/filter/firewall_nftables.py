# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall_nftables filter (documented in firewall_nftables.yml beside this file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.firewall import firewall_nftables


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"firewall_nftables": firewall_nftables}
