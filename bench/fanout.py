#!/usr/bin/env python3
"""Issue 15, part 2: where the time goes from one post to every member's inbox, stage by stage.

    .venv/bin/python bench/fanout.py [--repeats 3] [--lists ten,bulk,huge] [--relays 1,2]
                                     [--runner-sleep 0.1s] [--max-recipients 100,50]
                                     [--posting-pipeline default-posting-pipeline] [--out-runners 2]
                                     [--giant 50000]
                                     [--no-write]

Needs a converged lab (`scripts/lab ensure`). Each post goes from the lab's internet host to the
list domain's first MX over SMTP (tests/support/smtpclient.py, run inside the internet container); the
clock starts at the MX's 250 after DATA. Then, from the logs of every host (journald's
microsecond timestamps; postfix-out's own maillog_file) and the stored copies' modification times,
each post's path is cut into stages by its Message-ID, which Mailman keeps in every copy:


  MX -> back-end      the MX hands the post to the active back-end's Postfix (`status=sent` on the MX)
  -> Mailman          the back-end's Postfix hands it to Mailman over LMTP (its `status=sent`)
  first/last at relay Mailman's runners (in, pipeline, out) and postfix-out until a relay takes the
                      first and the last of the messages Mailman made (the relays' cleanup lines)
  relays -> internet  until the last relay has handed the last copy to the internet host
  first/last stored   the first and the last copy stored on the internet host
postfix-out's own log (maillog_file) has whole seconds only: it gives the number of messages
Mailman handed out, not times.
Around each post, the CPU that Mailman's service on the active back-end and PostgreSQL's on the
database host used (their cgroups' cpu.stat) tells how much of Mailman's time is its own work, and
the CPU all the lab's containers used (their cgroups, read on the docker host) how busy the machine's
cores were while the copies went out.

The lists are posted to first with the lab as converged (its own settings, every relay), then
once for each value of each option, that option alone changed (one factor at a time):
--runner-sleep sets mailman_core__runner_sleep_time (how long Mailman's runners sleep on an empty
queue), --max-recipients mailman_core__max_recipients (the most members Mailman puts on one
message), --posting-pipeline mailman_core__posting_pipeline (the posting pipeline of every list:
the plugin's, mailstack-posting-pipeline, or Mailman's, default-posting-pipeline), --out-runners
mailman_core__out_runners (Mailman's out runners, each handing out its share of the messages over
its own SMTP session); each is applied to the back-ends (playbooks/mailman_core.yml with -e) before the posts.
--relays N marks the relays after the first N draining (mailstack__draining in an extra
inventory), so postfix-out spreads Mailman's mail over the first N only (N equal to the lab's
relay count is the first setting already). The lab's own settings are applied again at the end.
--giant N first adds the list giant@ with N members through the role (a group layer of the
back-ends' lists in the same extra inventory, the lists module adding the members) and posts to it
after the other lists; it stays in the lab (deleting it would take Mailman minutes).

All times are seconds after the MX's 250. The containers share the machine's clock. Each list is
posted to --repeats times, one post at a time, every copy counted (a lost or duplicated copy
ends the benchmark); the table gives medians. Writes the section "fanout" of
docs/benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import testinfra
from benchlib import DOCS, ROOT, bar_chart, command_line, machine, markdown_table, text_table, write_section
from support import inventory
from support.smtpclient import first_refusal, message, send

LAB = "mailstack-lab-"
DOMAIN = "lists.mailstack.test"
LISTS = {  # the lab's lists (inventories/lab/group_vars/mailman_core): name -> members
    "announce": 4,
    "ten": 10,
    "bulk": 1000,
    "crowd": 2000,
    "huge": 10000,
}
SENDER = "sender@remote-a.test"
HELO = "internet.lab.mailstack.test"
STORE = "/var/mail/internet"
STAGES = [
    ("mx", "MX -> back-end"),
    ("lmtp", "-> Mailman (LMTP)"),
    ("relay_first", "first copy at a relay"),
    ("relay_last", "last copy at a relay"),
    ("relay_sent", "relays -> internet"),
    ("stored_first", "first copy stored"),
    ("stored_last", "last copy stored"),
]

# journalctl -o short-iso-precise: 2026-11-30T15:00:00.123456+00:00 host postfix/cleanup[1]: ...
ISO = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-]\d\d:?\d\d) \S+ (\S+?)\[\d+\]: (.*)$")
# Postfix's maillog_file (whole seconds): Nov 30 15:00:00 host postfix-out/cleanup[1]: ...
MAILLOG = re.compile(r"^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?) \S+ (\S+?)\[\d+\]: (.*)$")
# A queue ID (short: hex; long: digits and letters) and the rest of the line.
QUEUE_LINE = re.compile(r"^([0-9A-Za-z]{6,}): (.*)$")


def parse_time(stamp: str, year: int) -> float:
    """Epoch seconds of a journald ISO stamp or a maillog_file stamp (no year: the given one, UTC)."""
    if "T" in stamp:
        return datetime.fromisoformat(stamp).timestamp()
    layout = "%Y %b %d %H:%M:%S.%f" if "." in stamp else "%Y %b %d %H:%M:%S"
    return datetime.strptime(f"{year} {stamp}", layout).replace(tzinfo=UTC).timestamp()


def postfix_events(lines: list[str], message_id: str, year: int) -> dict[str, list[float]]:
    """From Postfix log lines: when each message carrying message_id was taken in (its cleanup
    line, `accepted`) and each delivery of it that succeeded (`sent`), in epoch seconds."""
    parsed = []
    for line in lines:
        m = ISO.match(line) or MAILLOG.match(line)
        if not m:
            continue
        q = QUEUE_LINE.match(m.group(3))
        if q:
            parsed.append((parse_time(m.group(1), year), q.group(1), q.group(2)))
    ids = {qid for _, qid, text in parsed if text == f"message-id=<{message_id}>"}
    out: dict[str, list[float]] = {"accepted": [], "sent": []}
    for t, qid, text in parsed:
        if qid not in ids:
            continue
        if text.startswith("message-id="):
            out["accepted"].append(t)
        elif "status=sent" in text:
            out["sent"].append(t)
    return out


def docker(host: str, command: str) -> str:
    proc = subprocess.run(
        ["docker", "exec", LAB + host, "bash", "-c", command], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"fanout: {host}: {command}: {proc.stderr.strip()[:500]}")
    return proc.stdout


def journal(host: str, since: float) -> list[str]:
    """The log lines of the host's primary Postfix instance in journald since `since` (epoch): every
    daemon's, whatever its syslog name (the MX's transport to the back-end logs as postfix/relay/smtp)."""
    cmd = f"journalctl -o short-iso-precise --no-pager --since @{int(since) - 1} -u postfix@-.service"
    return docker(host, cmd).splitlines()


def stored(token: str) -> list[tuple[str, float]]:
    """(recipient, modification time) of every stored copy that carries token."""
    # Only the Maildirs' new/ (tmp/ holds copies being written, which move away during the walk).
    script = (
        "import glob, os, sys\n"
        "for p in glob.glob(os.path.join(sys.argv[1], '*', 'new', '*')):\n"
        "    with open(p, 'rb') as fh: head = fh.read(65536)\n"
        "    if sys.argv[2].encode() in head:\n"
        "        to = head.split(b'Delivered-To: ', 1)[1].split(b'\\n', 1)[0].decode().strip()\n"
        "        print(to, os.stat(p).st_mtime)\n"
    )
    out = docker("internet", f"python3 -c {shlex.quote(script)} {STORE} {shlex.quote(token)}")
    return [(line.split()[0], float(line.split()[1])) for line in out.splitlines()]


def post_once(internet, name: str, members: int, hosts: dict[str, list[str]], active: str) -> dict:
    """Post once to list `name`; every stage's time (seconds after the MX's 250)."""
    token = f"fanout-{uuid.uuid4().hex[:12]}"
    message_id = f"{token}@remote-a.test"
    address = f"{name}@{DOMAIN}"
    msg = message(SENDER, address, f"fanout {token}", f"<{message_id}>")
    mx = hosts["mx"][0]
    db = hosts["db"][0]
    cpu_before = (cpu_usec(active, MAILMAN), cpu_usec(db, POSTGRESQL))
    lab_before = lab_cpu()
    since = time.time()
    result = send(internet, f"{mx}.lab.mailstack.test", SENDER, [address], msg, helo=HELO, timeout=60)
    t250 = time.time()
    if first_refusal(result) is not None:
        sys.exit(f"fanout: {address} refused: {result}")
    deadline = t250 + 600
    copies = stored(token)
    while len(copies) < members and time.time() < deadline:
        time.sleep(1 if members < 100 else 3)
        copies = stored(token)
    lab_used = {name: ns - lab_before.get(name, 0) for name, ns in lab_cpu().items()}
    counted = time.time()
    time.sleep(3)  # a duplicate would come right behind
    copies = stored(token)
    recipients = [to for to, _ in copies]
    cpu_after = (cpu_usec(active, MAILMAN), cpu_usec(db, POSTGRESQL))
    if len(copies) != members or len(set(recipients)) != members:
        distinct = len(set(recipients))
        sys.exit(f"fanout: {address}: {len(copies)} copies for {members} members, {distinct} distinct")
    year = datetime.now(UTC).year
    mx_events = postfix_events(journal(mx, since), message_id, year)
    core = postfix_events(journal(active, since), message_id, year)
    out = postfix_events(docker(active, "cat /var/log/postfix-out.log").splitlines(), message_id, year)
    relay_taken, relay_sent = [], []
    for relay in hosts["relays"]:
        events = postfix_events(journal(relay, since), message_id, year)
        relay_taken += events["accepted"]
        relay_sent += events["sent"]
    docker("internet", f"grep -rlF {shlex.quote(token)} {STORE} | xargs -r rm -f")
    found = {
        "MX sent": mx_events["sent"],
        "LMTP sent": core["sent"],
        "postfix-out accepted": out["accepted"],
        "relays accepted": relay_taken,
        "relays sent": relay_sent,
    }
    missing = [what for what, times in found.items() if not times]
    if missing:
        sys.exit(f"fanout: {address}: no log lines for {missing} of {message_id}")
    mtimes = [t for _, t in copies]
    return {
        "mailman_cpu": (cpu_after[0] - cpu_before[0]) / 1e6,
        "db_cpu": (cpu_after[1] - cpu_before[1]) / 1e6,
        "lab_cpu": sum(lab_used.values()) / 1e9,
        "internet_cpu": lab_used.get("internet", 0) / 1e9,
        "lab_window": counted - since,  # from before the post until every copy was counted
        "mx": max(mx_events["sent"]) - t250,
        "lmtp": max(core["sent"]) - t250,
        "relay_first": min(relay_taken) - t250,
        "relay_last": max(relay_taken) - t250,
        "relay_sent": max(relay_sent) - t250,
        "stored_first": min(mtimes) - t250,
        "stored_last": max(mtimes) - t250,
        "accept": t250 - since,
        "messages": len(out["accepted"]),
    }


def cpu_usec(host: str, unit: str) -> int:
    """Microseconds of CPU the running service unit (a name or a glob such as postgresql@*) and all
    its processes have used on the host (its cgroup's cpu.stat)."""
    cmd = (
        f"u=$(systemctl list-units --type=service --state=running --plain --no-legend {shlex.quote(unit)}"
        " | awk 'NR == 1 {print $1}'); [ -n \"$u\" ] || exit 1; "
        "cg=$(systemctl show -P ControlGroup \"$u\"); [ -n \"$cg\" ] || exit 1; "
        "f=/sys/fs/cgroup$cg/cpu.stat; [ -f $f ] || f=/sys/fs/cgroup/unified$cg/cpu.stat; "
        "awk '/^usage_usec/ {print $2}' $f"
    )
    out = docker(host, cmd).strip()
    if not out.isdigit():
        sys.exit(f"fanout: {host}: no CPU figure for {unit}")
    return int(out)


MAILMAN, POSTGRESQL = "mailman3.service", "postgresql@*"
CGROUPS = ("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage", "/sys/fs/cgroup/docker/{id}/cpu.stat")


def container_cpu_ns(cgroup_file: str, text: str) -> int:
    """Nanoseconds of CPU from a container's cgroup file: cpuacct.usage (cgroup v1, nanoseconds) or
    cpu.stat (cgroup v2, its usage_usec line)."""
    if cgroup_file.endswith("cpu.stat"):
        usec = next(int(line.split()[1]) for line in text.splitlines() if line.startswith("usage_usec "))
        return usec * 1000
    return int(text.strip())


def lab_cpu() -> dict[str, int]:
    """Nanoseconds of CPU every lab container has used, by container name (read on the docker host)."""
    out = subprocess.run(
        ["docker", "ps", "--filter", f"name=^{LAB}", "--format", "{{.ID}} {{.Names}}", "--no-trunc"],
        capture_output=True, text=True, check=True,
    ).stdout
    usage = {}
    for line in out.splitlines():
        cid, name = line.split()
        path = next((Path(p.format(id=cid)) for p in CGROUPS if Path(p.format(id=cid)).exists()), None)
        if path is None:
            sys.exit(f"fanout: no cgroup CPU figure for {name}")
        usage[name.removeprefix(LAB)] = container_cpu_ns(str(path), path.read_text())
    return usage


def idle_cpu(active: str, seconds: float = 30) -> float:
    """Milliseconds of CPU per second Mailman (every runner) spends on the active back-end with no mail."""
    before = cpu_usec(active, MAILMAN)
    time.sleep(seconds)
    return (cpu_usec(active, MAILMAN) - before) / 1000 / seconds


def extra_inventory(relays: list[str], count: int, giant: int = 0) -> dict:
    """An extra inventory that leaves the first count relays serving and drains the others, and,
    with giant, adds the list giant@ with that many members (a group layer of the back-ends' lists,
    members numbered on the two remote test domains as the lab's huge@ has them)."""
    drained = {relay: {"mailstack__draining": True} for relay in relays[count:]}
    children: dict = {"relays": {"hosts": drained}}
    if giant:
        domains = "mailstack__lab_remote_domains[:2]"
        members = f"{{{{ 'giant' | mailstack.site.numbered_addresses({giant}, {domains}) }}}}"
        children["mailman_core"] = {"vars": {"mailman_core__group_lists": [{
            "name": f"giant@{DOMAIN}",
            "owners": ["owner@remote-a.test"],
            "settings": {"description": f"Benchmark list of {giant}", "subject_prefix": "[giant] ",
                         "default_member_action": "accept", "default_nonmember_action": "accept"},
            "members": members,
        }]}}
    return {"all": {"children": children}}


def apply_setting(
    extra_vars: dict[str, str], relays: list[str], count: int, active: str, giant: int = 0
) -> None:
    """Converge the back-ends with extra_vars (none: the inventory's settings), postfix-out
    sending over the first count relays and, with giant, the list giant@ of that many members, then
    wait until the active back-end's Mailman takes LMTP again."""
    extra = [a for name, value in extra_vars.items() for a in ("-e", f"{name}={value}")]
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        if count < len(relays) or giant:
            extra_file = Path(tmp) / "extra.yml"
            extra_file.write_text(json.dumps(extra_inventory(relays, count, giant)))
            env["MAILSTACK_LAB_EXTRA_INVENTORY"] = str(extra_file)
        proc = subprocess.run(
            [str(ROOT / "scripts" / "lab"), "play", "playbooks/mailman_core.yml", *extra],
            cwd=ROOT, capture_output=True, text=True, check=False, env=env,
        )
    if proc.returncode != 0:
        out = f"{proc.stdout[-3000:]}\n{proc.stderr[-1000:]}"
        sys.exit(f"fanout: mailman_core.yml {' '.join(extra)} with {count} relays failed:\n{out}")
    deadline = time.monotonic() + 120
    probe = ["docker", "exec", LAB + active, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8024"]
    while subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        if time.monotonic() > deadline:
            sys.exit(f"fanout: Mailman's LMTP on {active} did not answer within 120 s")
        time.sleep(1)


def lab() -> tuple[dict[str, list[str]], str, object]:
    """The lab's hosts by group (mx, mailman_core, relays, db), its active back-end, and its
    internet host (a testinfra host)."""
    inv = inventory.read("inventories/lab")
    hosts = {g: inventory.hosts(inv, g) for g in ("mx", "mailman_core", "relays", "db")}
    hostvars = inv["_meta"]["hostvars"]
    active = next(h for h in hosts["mailman_core"] if hostvars[h].get("mailstack__active_backend"))
    return hosts, active, testinfra.get_host(f"docker://{LAB}internet")


def split(values: str) -> list[str]:
    """An option's comma-separated values ("" for none)."""
    return [v.strip() for v in values.split(",") if v.strip()]


def relays_label(count: int) -> str:
    return f"{count} relay{'s' if count > 1 else ''}"


def one_at_a_time(
    options: dict[str, list[str]], counts: list[int], relays: int
) -> list[tuple[str, dict, int]]:
    """The settings measured, as (label, extra vars, relays serving): the lab as converged first
    (no extra vars, every relay), then each value of each option with only that option changed;
    a relay count equal to the lab's is the first setting already."""
    settings = [(f"lab settings ({relays_label(relays)})", {}, relays)]
    settings += [(relays_label(n), {}, n) for n in dict.fromkeys(counts) if n != relays]
    for name, values in options.items():
        short = name.removeprefix("mailman_core__")
        settings += [(f"{short} {value}", {name: value}, relays) for value in values]
    return settings


def chart(medians: list[tuple[str, dict]], png: Path) -> bool:
    """Each row's median post as a bar from the MX's 250 to the last stored copy, cut at the
    hand-over to Mailman, the first and the last message at a relay."""
    def part(key_from: str | None, key_to: str) -> list[float]:
        return [max(0.0, med[key_to] - (med[key_from] if key_from else 0.0)) for _, med in medians]

    segments = [
        ("MX and LMTP, to Mailman", part(None, "lmtp")),
        ("Mailman, to the first message at a relay", part("lmtp", "relay_first")),
        ("first to last message at a relay", part("relay_first", "relay_last")),
        ("relays and receiver, to the last stored copy", part("relay_last", "stored_last")),
    ]
    title = "A post's way to every member (bench/fanout.py, medians)"
    return bar_chart(png, title, [label for label, _ in medians], segments, "seconds after the MX's 250")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lists", default="ten,bulk,huge", help="lab lists to post to (comma-separated)")
    parser.add_argument("--runner-sleep", default="", help="values of mailman_core__runner_sleep_time")
    parser.add_argument("--max-recipients", default="", help="values of mailman_core__max_recipients")
    parser.add_argument(
        "--posting-pipeline", default="", help="values of mailman_core__posting_pipeline (every list's)"
    )
    parser.add_argument("--out-runners", default="", help="values of mailman_core__out_runners")
    parser.add_argument(
        "--giant", type=int, default=0,
        help="add the list giant@ with this many members (e.g. 50000) and post to it too (it stays)",
    )
    parser.add_argument(
        "--relays", default="", help="fewer relays for postfix-out to send over, each count a setting"
    )
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    hosts, active, internet = lab()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = machine()
    rows, medians = [], []
    relays = hosts["relays"]
    counts = [int(n) for n in split(args.relays)]
    if any(not 1 <= n <= len(relays) for n in counts):
        sys.exit(f"fanout: --relays {args.relays}: the lab has {len(relays)} relays")
    options = {
        "mailman_core__runner_sleep_time": split(args.runner_sleep),
        "mailman_core__max_recipients": split(args.max_recipients),
        "mailman_core__posting_pipeline": split(args.posting_pipeline),
        "mailman_core__out_runners": split(args.out_runners),
    }
    lists, sizes = split(args.lists), dict(LISTS)
    if args.giant:
        sizes["giant"] = args.giant
        lists.append("giant")
        built = time.monotonic()
        apply_setting({}, relays, len(relays), active, args.giant)
        print(f"giant@ with {args.giant} members in place after {time.monotonic() - built:.0f} s")
    converged = applied = ({}, len(relays))  # the lab as converged: its own settings, every relay
    try:
        for label_setting, extra_vars, count in one_at_a_time(options, counts, len(relays)):
            if (extra_vars, count) != applied:
                apply_setting(extra_vars, relays, count, active, args.giant)
                applied = (extra_vars, count)
            # One post first, not counted: the first after Mailman (re)started is slower.
            post_once(internet, "announce", LISTS["announce"], hosts, active)
            idle = idle_cpu(active)
            for name in lists:
                members = sizes[name]
                runs = [post_once(internet, name, members, hosts, active) for _ in range(args.repeats)]
                med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                rate = members / med["stored_last"] if med["stored_last"] > 0 else 0
                label = f"{name} ({members}), {label_setting}"
                rows.append(
                    (label, f"{med['accept']:.2f}", *(f"{med[k]:.2f}" for k, _ in STAGES),
                     f"{rate:.0f}", f"{med['messages']:.0f}", f"{med['mailman_cpu']:.2f}",
                     f"{med['mailman_cpu'] * 1000 / members:.2f}", f"{med['db_cpu']:.2f}", f"{idle:.1f}",
                     f"{med['lab_cpu']:.1f}", f"{med['internet_cpu']:.1f}",
                     f"{med['lab_cpu'] / med['lab_window']:.2f}")
                )
                medians.append((label, med))
                print(f"{label}: {[round(r['stored_last'], 2) for r in runs]} s to the last copy")
    finally:
        if applied != converged:
            apply_setting({}, relays, len(relays), active, args.giant)
    header = ["list (members)", "250 after", *(label for _, label in STAGES)]
    header += ["recipients/s", "postfix-out messages", "Mailman CPU s", "Mailman CPU ms/member"]
    header += ["PostgreSQL CPU s", "Mailman idle CPU ms/s"]
    header += ["lab CPU s", "internet host CPU s", "lab cores busy"]
    print(text_table(header, rows))
    if args.no_write:
        return
    png = DOCS / "fanout.png"
    charted = chart(medians, png)
    body = (
        "## List fan-out, stage by stage (issue 15, part 2)\n\n"
        f"Written by `{command_line('fanout.py', sys.argv[1:])}`"
        + f" on {started}. Machine: {load_before} (before), {machine()} (after). "
        f"The lab as converged: {len(hosts['mx'])} MX nodes, the active back-end {active}, "
        f"{len(relays)} relays. Each row's setting: the lab's own (\"lab settings\"), or that with one "
        "change: fewer relays serving (the others drained), or one of Mailman's settings "
        "(`mailman_core__` + its name). "
        f"Medians of {args.repeats} posts per list, one at a time.\n\n"
        "Each column is seconds after the MX's 250 (\"250 after\": the SMTP session until then, "
        "scanning included), read from the hosts' Postfix logs by the post's Message-ID and from the "
        "stored copies' times: the MX hands the post to the back-end, the back-end to Mailman over LMTP, "
        "a relay takes the first and the last message Mailman made (through postfix-out), the relays "
        "hand their last copy to the internet host, which stores the first and the last. "
        "recipients/s: members / the last copy's time. postfix-out messages: the messages Mailman "
        "handed out (each to up to `mailman_core__max_recipients` members). Mailman CPU and PostgreSQL "
        "CPU: what Mailman's service (every runner) on the active back-end and PostgreSQL's on the "
        "database host used from just before the post until its last copy was stored. Mailman idle "
        "CPU: what all of Mailman's runners used on the active back-end over 30 s without mail, "
        "before the posts. Lab CPU: what all the lab's containers used from just before the post until "
        "the script had counted every copy (it looks every 3 s for big lists, reading the stored copies: "
        "that reading is part of the internet host's CPU), the internet host's part of it, and that CPU "
        "over that time: the cores the lab kept busy on average (the machine has 2). "
        "A post to the 4-member list precedes each setting's posts, uncounted (the first post after "
        "Mailman starts is slower).\n\n"
        + markdown_table(header, rows)
        + (f"\n![List fan-out]({png.name})\n" if charted else "\n(No chart: matplotlib is not installed.)\n")
    )
    print(f"written to {write_section('fanout', body)}")


if __name__ == "__main__":
    main()
