# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mailman_periodic_jobs filter (documented in mailman_periodic_jobs.yml beside this file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.mailman import mailman_periodic_jobs


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"mailman_periodic_jobs": mailman_periodic_jobs}
