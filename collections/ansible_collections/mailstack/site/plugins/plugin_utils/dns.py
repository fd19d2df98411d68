# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The list domains' DKIM selectors and the DNS records to publish (filters dkim_selectors, dns_records)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import Where

_SELECTOR = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}", re.ASCII)
# DNS character-strings hold at most 255 octets; a TXT record longer than that is several strings.
TXT_STRING_MAX = 255


def dkim_selectors(domains: Any, selector: Any, overrides: Any = None) -> list[dict[str, str]]:
    """One {domain, selector} per list domain: the overrides' selector for its domain, else the default."""
    where = "dkim_selectors"
    if isinstance(domains, str | Mapping) or not isinstance(domains, Sequence):
        raise Where(where).error(f"input must be the list domains (a list), got {type(domains).__name__}")
    overrides = {} if overrides is None else overrides
    if not isinstance(overrides, Mapping):
        raise Where(where).error(
            f"mailstack__dkim_selectors must be a mapping of list domain to selector, "
            f"got {type(overrides).__name__}"
        )
    for domain in overrides:
        if domain not in domains:
            raise Where(where).error(
                f"mailstack__dkim_selectors names '{domain}', which is not a list domain "
                f"({', '.join(domains) or 'none'})"
            )
    result = []
    for domain in domains:
        chosen = overrides.get(domain, selector)
        variable = (
            f"mailstack__dkim_selectors['{domain}']" if domain in overrides else "mailstack__dkim_selector"
        )
        if not isinstance(chosen, str) or not _SELECTOR.fullmatch(chosen):
            raise Where(where).error(
                f"{variable} must be a DNS label (lower-case letters, digits, inner hyphens), got {chosen!r}"
            )
        result.append({"domain": domain, "selector": chosen})
    return result


def _txt(name: str, text: str) -> dict[str, Any]:
    strings = [text[i : i + TXT_STRING_MAX] for i in range(0, len(text), TXT_STRING_MAX)]
    return {
        "name": name,
        "type": "TXT",
        "text": text,
        "strings": strings,
        "zone": f"{name}. 3600 IN TXT ( {' '.join(chr(34) + s + chr(34) for s in strings)} )",
    }


def dns_records(
    dkim_keys: Any, topology: Mapping[str, Any], dmarc: str = "v=DMARC1; p=none", spf_all: str = "-all"
) -> list[dict[str, Any]]:
    """The TXT records to publish for the list domains: DKIM (one per key), SPF and DMARC.

    dkim_keys: [{domain, selector, public_key}] (public_key: the base64 DER SubjectPublicKeyInfo).
    SPF names every relay (mail of the list domains leaves through them only).
    """
    where = "dns_records"
    if isinstance(dkim_keys, str | Mapping) or not isinstance(dkim_keys, Sequence):
        raise Where(where).error(f"input must be a list of DKIM keys, got {type(dkim_keys).__name__}")
    if not isinstance(dmarc, str) or not dmarc.startswith("v=DMARC1;"):
        raise Where(where).error(f"mailstack__dmarc_record must start with 'v=DMARC1;', got {dmarc!r}")
    if spf_all not in ("-all", "~all", "?all"):
        raise Where(where).error(f"mailstack__spf_all must be -all, ~all or ?all, got {spf_all!r}")
    records = []
    for index, key in enumerate(dkim_keys):
        if not isinstance(key, Mapping) or not all(
            isinstance(key.get(k), str) for k in ("domain", "selector", "public_key")
        ):
            raise Where(where).error(f"input[{index}] needs domain, selector and public_key, got {key!r}")
        public_key = "".join(key["public_key"].split())
        if not _BASE64.fullmatch(public_key):
            raise Where(where).error(f"input[{index}] ({key['domain']}): public_key is not base64")
        records.append(
            _txt(f"{key['selector']}._domainkey.{key['domain']}", f"v=DKIM1; k=rsa; p={public_key}")
        )
    senders = [
        f"ip{ipaddress.ip_address(a).version}:{a}" for a in topology.get("addresses", {}).get("relays", [])
    ]
    for domain in topology.get("list_domains", []):
        records.append(_txt(domain, " ".join(["v=spf1", *senders, spf_all])))
        records.append(_txt(f"_dmarc.{domain}", dmarc))
    return records
