# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall_merge_rules filter (documented in firewall_merge_rules.yml beside this file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.firewall import firewall_merge_rules


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"firewall_merge_rules": firewall_merge_rules}
