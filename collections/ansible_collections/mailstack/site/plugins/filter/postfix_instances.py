# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The postfix_instances filter (documented in postfix_instances.yml beside this file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_assembly import postfix_instances


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"postfix_instances": postfix_instances}
