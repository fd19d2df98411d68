# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mailman_started_runners filter (documented in mailman_started_runners.yml beside this file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.mailman import mailman_started_runners


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"mailman_started_runners": mailman_started_runners}
