# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Numbered addresses over several domains: the lab's list members, and what the tests expect of them."""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import Where, is_list, type_name

_LOCAL = re.compile(r"[a-z0-9][a-z0-9._+-]{0,40}", re.ASCII)
_DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", re.ASCII)
COUNT_MAX = 1_000_000


def numbered_addresses(prefix: Any, count: Any, domains: Any) -> list[str]:
    """``<prefix><n>@<domain>`` for n in 0..count-1, the domains taken in turn (n modulo their number)."""
    where = Where("numbered_addresses")
    if not isinstance(prefix, str) or not _LOCAL.fullmatch(prefix):
        raise where.error(
            f"the prefix must be a local part (lower case letters, digits, '._+-'), got {prefix!r}"
        )
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= COUNT_MAX:
        raise where.error(f"count must be an integer from 0 to {COUNT_MAX}, got {count!r}")
    if not is_list(domains) or not domains:
        raise where.error(
            f"domains must be a non-empty list of domain names, got {type_name(domains)} {domains!r}"
        )
    for index, domain in enumerate(domains):
        if not isinstance(domain, str) or not _DOMAIN.fullmatch(domain):
            raise where.error(f"domains[{index}] must be a domain name, got {domain!r}")
    return [f"{prefix}{n}@{domains[n % len(domains)]}" for n in range(count)]
