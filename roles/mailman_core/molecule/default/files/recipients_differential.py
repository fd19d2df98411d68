"""The plugin's posting pipeline against Mailman's own, on random member populations in a real Mailman.

Run on a back-end as the `list` user: python3 recipients_differential.py CONFIG [--seed N]
[--populations N] [--mutant]. Prints one JSON object: the cases compared, the mismatches (empty when
the two pipelines agree on every case) and how often each rule was met (so that a run cannot pass
without meeting them). Exit status 0 only when nothing differs.

Each population is a new list on the site's first domain with random members: delivery status
(enabled, disabled by the user, by bounces, by a moderator), delivery mode (regular and the three
digest modes), `receive_own_postings` and `receive_list_copy`, each set on the member, on its address,
on its user or nowhere; members subscribed as an address or as a user (through the user's preferred
address), a user with two addresses both subscribed, addresses in mixed case, owners and moderators
who are also members, banned members. Posts come from members (in another case too), owners,
nonmembers and strangers, with members in To and Cc. Every handler of both pipelines that changes only
the message and its metadata runs (the ones that queue or send mail are left out), and the recipients,
the metadata and the whole message must be the same.

Nothing is committed: each population is rolled back, so the running site never sees it.
--mutant makes the plugin treat members disabled by bounces as enabled (a rule dropped on purpose):
the run must then report mismatches, which shows that the comparison can fail.
"""

import argparse
import json
import random
import sys
from datetime import datetime
from email import message_from_string

import mailstack_mailman.handlers.member_recipients as handler
from mailman.config import config
from mailman.core.initialize import initialize
from mailman.email.message import Message
from mailman.interfaces.domain import IDomainManager
from mailman.interfaces.listmanager import IListManager
from mailman.interfaces.member import DeliveryMode, DeliveryStatus, MemberRole
from mailman.interfaces.pipeline import DiscardMessage, RejectMessage
from mailman.interfaces.styles import IStyleManager
from mailman.interfaces.usermanager import IUserManager
from mailman.model.bans import BanManager
from mailstack_mailman.recipients import effective
from zope.component import getUtility

SIDE_EFFECTS = {"to-archive", "to-digest", "to-usenet", "after-delivery", "acknowledge", "to-outgoing"}
STOCK, PLUGIN = "default-posting-pipeline", "mailstack-posting-pipeline"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--populations", type=int, default=12)
    parser.add_argument("--mutant", action="store_true")
    args = parser.parse_args()
    initialize(args.config)

    if args.mutant:
        honest = handler.regular_recipients

        def mutant(rows, **kw):
            rows = list(rows)
            return honest(rows, **kw) | {
                email for email, modes, statuses in rows
                if effective(statuses, kw["default_status"]) == DeliveryStatus.by_bounces
                and effective(modes, kw["default_mode"]) == kw["regular"]
            }

        handler.regular_recipients = mutant

    stock_names = [h.name for h in config.pipelines[STOCK]]
    plugin_names = [h.name for h in config.pipelines[PLUGIN]]
    assert [n for n in plugin_names if n != "mailstack-member-recipients"] == [
        n for n in stock_names if n != "member-recipients"
    ], (stock_names, plugin_names)

    rnd = random.Random(args.seed)
    users = getUtility(IUserManager)
    domain = next(iter(getUtility(IDomainManager))).mail_host
    coverage = {}
    mismatches = []
    cases = 0

    def count(key):
        coverage[key] = coverage.get(key, 0) + 1

    def cased(email):
        return "".join(c.upper() if rnd.random() < 0.3 else c for c in email)

    def maybe(values):
        return rnd.choice([None, None, *values])

    def set_prefs(prefs, level):
        values = {
            "delivery_status": maybe([DeliveryStatus.enabled, DeliveryStatus.by_user,
                                      DeliveryStatus.by_bounces, DeliveryStatus.by_moderator]),
            "delivery_mode": maybe([DeliveryMode.regular, DeliveryMode.regular,
                                    DeliveryMode.plaintext_digests, DeliveryMode.mime_digests,
                                    DeliveryMode.summary_digests]),
            "receive_own_postings": maybe([True, False]),
            "receive_list_copy": maybe([True, False]),
        }
        for name, value in values.items():
            setattr(prefs, name, value)
            if value is not None:
                count(f"{name} set on the {level}")

    def run(pipeline, mlist, text):
        msg = message_from_string(text, Message)
        msgdata = {}
        outcome = "delivered"
        try:
            for h in config.pipelines[pipeline]:
                if h.name not in SIDE_EFFECTS:
                    h.process(mlist, msg, msgdata)
        except (DiscardMessage, RejectMessage) as error:
            outcome = type(error).__name__
        recipients = sorted(msgdata.pop("recipients", None) or [])
        data = {k: sorted(v) if isinstance(v, (set, list)) else repr(v) for k, v in msgdata.items()}
        return {"outcome": outcome, "recipients": recipients, "msgdata": data, "message": msg.as_string()}

    for number in range(args.populations):
        mlist = getUtility(IListManager).create(f"diff{args.seed}-{number}@{domain}")
        getUtility(IStyleManager).get(config.styles.default).apply(mlist)
        mlist.send_welcome_message = False
        mlist.admin_notify_mchanges = False
        people = []  # (address as given, member) of every member
        others = []  # owners only, nonmembers
        for i in range(rnd.randint(25, 45)):
            email = cased(f"p{number}x{i}@example.test")
            kind = rnd.choice(["address", "linked address", "user"])
            if kind == "address":
                address = users.create_address(email)
                subscriber = address
            else:
                user = users.create_user(email)
                address = next(iter(user.addresses))
                address.verified_on = datetime.now()
                if kind == "user" or rnd.random() < 0.5:
                    user.preferred_address = address
                set_prefs(user.preferences, "user")
                subscriber = user if kind == "user" else address
            set_prefs(address.preferences, "address")
            if rnd.random() < 0.15:
                owner = users.create_address(cased(f"o{number}x{i}@example.test"))
                mlist.subscribe(owner, rnd.choice([MemberRole.owner, MemberRole.nonmember]),
                                send_welcome_message=False)
                others.append(owner.original_email)
                continue
            member = mlist.subscribe(subscriber, MemberRole.member, send_welcome_message=False)
            count(f"subscribed as {kind}")
            set_prefs(member.preferences, "member")
            people.append((address.original_email, member))
            if kind == "user" and rnd.random() < 0.3:
                second = user.register(cased(f"p{number}x{i}.second@example.test"))
                second.verified_on = datetime.now()
                mlist.subscribe(second, MemberRole.member, send_welcome_message=False)
                people.append((second.original_email, mlist.members.get_member(second.email)))
                count("a user with two addresses subscribed")
            if rnd.random() < 0.15:
                mlist.subscribe(address, rnd.choice([MemberRole.owner, MemberRole.moderator]),
                                send_welcome_message=False)
                count("an owner or moderator who is also a member")
            if rnd.random() < 0.1:
                BanManager(mlist if rnd.random() < 0.5 else None).ban(address.email)
                count("a banned member")
        for _, member in people:
            count(f"effective delivery_status {member.delivery_status.name}")
            count(f"effective delivery_mode {member.delivery_mode.name}")
            if not member.receive_own_postings:
                count("effective receive_own_postings False")
            if not member.receive_list_copy:
                count("effective receive_list_copy False")
            if member.address.original_email != member.address.email:
                count("an address in mixed case")
        own = [(g, m) for g, m in people if not m.receive_own_postings]
        for post in range(4):
            # The first post is from a member who wants no copy of their own posts, when there is one.
            given, sender = own[0] if post == 0 and own else rnd.choice(people)
            choices = [given, given.swapcase(), given.lower(), *others, f"stranger{post}@example.test"]
            sender_address = rnd.choice(choices if post else choices[:2])
            named = rnd.sample(people, min(len(people), rnd.randint(0, 4)))
            to = [mlist.posting_address, *(rnd.choice([g, g.lower(), g.swapcase()]) for g, _ in named[:2])]
            cc = [f'"Member {n}" <{g}>' for n, (g, _) in enumerate(named[2:])]
            for _, member in named:
                if not member.receive_list_copy:
                    count("a member named in To or Cc who wants no list copy")
            if sender_address.lower() == given.lower() and not sender.receive_own_postings:
                count("a post from a member who wants no copy of their own")
            text = (f"From: {sender_address}\nTo: {', '.join(to)}\n"
                    + (f"Cc: {', '.join(cc)}\n" if cc else "")
                    + f"Subject: population {number} post {post}\n"
                    + f"Message-ID: <d{args.seed}.{number}.{post}@example.test>\n\nHello list.\n")
            stock, plugin = run(STOCK, mlist, text), run(PLUGIN, mlist, text)
            cases += 1
            if stock != plugin:
                only_stock = sorted(set(stock["recipients"]) - set(plugin["recipients"]))
                only_plugin = sorted(set(plugin["recipients"]) - set(stock["recipients"]))
                mismatches.append({"case": f"population {number} post {post}",
                                   "only stock": only_stock[:5], "only plugin": only_plugin[:5],
                                   "fields": [k for k in stock if stock[k] != plugin[k]]})
            count("recipients" if stock["recipients"] else "no recipient")
            coverage["copies compared"] = coverage.get("copies compared", 0) + len(stock["recipients"])
        config.db.abort()
    report = {"cases": cases, "mismatches": mismatches, "coverage": coverage}
    json.dump(report, sys.stdout, indent=1, sort_keys=True)
    print()
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
