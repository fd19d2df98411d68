# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The relay_sender_restrictions filter (documented in relay_sender_restrictions.yml beside this file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_senders import relay_sender_restrictions


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"relay_sender_restrictions": relay_sender_restrictions}
