# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The merge_layers filter (documented in merge_layers.yml beside this file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.layers import merge_named_layers


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"merge_layers": merge_named_layers}
