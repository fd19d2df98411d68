# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mailman_web_settings filter (documented in mailman_web_settings.yml beside this file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.mailman_web import mailman_web_settings


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"mailman_web_settings": mailman_web_settings}
