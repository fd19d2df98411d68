# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which envelope senders each client of a relay may use (the relay_sender_restrictions filter).

The relays accept mail from the list back-ends and from the web front-ends (mynetworks), and sign
every message whose envelope sender is in a list domain. A web front-end's own Postfix sends
Postorius' and Django's mail only, never a list's: a client on the refused list gets `REJECT` at
MAIL FROM for any sender in a list domain (or a subdomain of one), through a restriction class
picked by a client access table, so the relay neither takes nor signs it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import Where, is_list, type_name

CLASS = "mailstack_list_senders_refused"
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
REASON = "5.7.1 list addresses are sent by the list back-ends only"


def relay_sender_restrictions(clients: Any, domains: Any) -> list[dict[str, Any]]:
    """main.cf entries ({name, value, comment}) refusing list-domain senders from CLIENTS."""
    where = Where("relay_sender_restrictions")
    if not is_list(clients):
        raise where.error(f"input must be the refused clients' addresses (a list), got {type_name(clients)}")
    if not is_list(domains):
        raise where.error(f"domains must be the list domains (a list), got {type_name(domains)}")
    addresses = []
    for client in clients:
        try:
            addresses.append(str(ipaddress.ip_address(str(client))))
        except ValueError:
            raise where.error(f"client {client!r} is not an IP address") from None
    for domain in domains:
        if not isinstance(domain, str) or not _DOMAIN.fullmatch(domain):
            raise where.error(f"domain {domain!r} is not a lower-case domain name")
    if not addresses or not domains:
        return []
    senders = ", ".join(f"{{{domain} = REJECT {REASON}}}" for domain in domains)
    by_client = ", ".join(f"{{{address} = {CLASS}}}" for address in dict.fromkeys(addresses))
    return [
        {"name": "smtpd_restriction_classes", "value": [CLASS]},
        {
            "name": CLASS,
            "value": f"check_sender_access inline:{{ {senders} }}",
            "comment": "A sender in a list domain (or below one) is refused.",
        },
        {
            "name": "smtpd_sender_restrictions",
            "value": f"check_client_access inline:{{ {by_client} }}",
            "comment": "The web front-ends send Postorius' mail, never a list's.",
        },
    ]
