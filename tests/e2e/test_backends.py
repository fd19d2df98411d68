"""Active and standby list back-ends on one copy of Mailman's data, on a running lab
(`make lab-test`): the standby never runs Mailman, the storage host serves the share to the
back-ends only, an inventory with two active back-ends is refused, and playbooks/failover.yml moves
the active role while posts wait in the shared queue and in the old back-end's Postfix, delivering
each of them exactly once.

The lab's back-ends reach the share through the lab's stand-in (the docker volume that ganesha
exports on the storage host, bind-mounted at Mailman's var dir; inventories/lab); the NFS protocol
itself is proven by the nfs_server role's molecule scenario.
"""

import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass

import pytest
from e2e import (
    active_backend,
    copies,
    delete,
    exactly_once,
    headers,
    internet,
    mailman_rest,
    mailman_waiting,
    post,
    queue_size,
    recipients,
    settled,
    wait_copies,
)
from support.scenario import flat
from test_lab import HOSTVARS, TOP, group, lab_host, send

LIST = "announce@lists.mailstack.test"
MEMBERS = {"alice@remote-a.test", "bob@remote-a.test", "carol@remote-b.test", "dave@remote-b.test"}
BACKENDS = group("mailman_core")
ACTIVE = next(h for h in BACKENDS if HOSTVARS[h].get("mailstack__active_backend"))
STANDBY = next(h for h in BACKENDS if h != ACTIVE)
STORE = group("nfs_server")[0]
MX = group("mx")
RELAYS = group("relays")
SHARE = "/var/lib/mailman3"
MARKER = f"{SHARE}/mailstack-active"


def address(host: str) -> str:
    return HOSTVARS[host]["mailstack__address"]


def lab_play(playbook: str, *args: str, extra_inventory: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if extra_inventory:
        env["MAILSTACK_LAB_EXTRA_INVENTORY"] = extra_inventory
    return subprocess.run(
        [str(TOP / "scripts" / "lab"), "play", str(TOP / "playbooks" / playbook), *args],
        cwd=TOP, env=env, capture_output=True, text=True, check=False,
    )


# systemd's states of a unit that runs nothing.
DOWN = ("inactive", "failed")


def mailman_state(host: str) -> tuple[str, str]:
    h = lab_host(host)
    enabled = h.run("systemctl is-enabled mailman3").stdout.strip()
    return enabled, h.run("systemctl is-active mailman3").stdout.strip()


def test_the_standby_has_mailman_configured_but_masked_and_gets_no_mail(figure):
    assert mailman_state(ACTIVE) == ("enabled", "active")
    assert mailman_state(STANDBY) == ("masked", "inactive")
    standby = lab_host(STANDBY)
    assert standby.file("/etc/mailman3/mailman.cfg").exists
    # One copy of the data: both back-ends read the active one's name from the share.
    for host in BACKENDS:
        assert lab_host(host).file(MARKER).content_string.strip() == ACTIVE
    # The master lock is local to the host that runs Mailman, never on the share.
    assert lab_host(ACTIVE).file("/run/lock/mailman3/master.lck").exists
    assert not standby.file("/run/lock/mailman3/master.lck").exists
    assert not lab_host(ACTIVE).file(f"{SHARE}/locks/master.lck").exists
    # The MX nodes send list mail to the active back-end only.
    for mx in MX:
        config = lab_host(mx).check_output("postconf -n")
        assert f"[{address(ACTIVE)}]:25" in config
        assert address(STANDBY) not in config
    figure(f"{ACTIVE} runs Mailman, {STANDBY} is masked; the MX nodes send to {ACTIVE} only")


def test_the_share_is_served_to_the_back_ends_only(figure):
    """ganesha listens on 2049 on the storage host; its export and the firewall admit the back-ends only."""
    config = lab_host(STORE).check_output("cat /etc/ganesha/mailstack-exports.conf")
    assert f"Clients = {address(ACTIVE)}, {address(STANDBY)};" in config
    probe = f"timeout 5 bash -c 'exec 3<>/dev/tcp/{address(STORE)}/2049' && echo open || echo closed"
    got = {host: lab_host(host).check_output(probe) for host in [*BACKENDS, MX[0], RELAYS[0]]}
    figure(f"NFS port 2049 of {STORE} from: {got}")
    assert got == {ACTIVE: "open", STANDBY: "open", MX[0]: "closed", RELAYS[0]: "closed"}


def test_preflight_refuses_two_active_back_ends(tmp_path, figure):
    extra = tmp_path / "two-active.yml"
    extra.write_text(json.dumps({"all": {"children": {"mailman_core": {"hosts": {
        STANDBY: {"mailstack__active_backend": True}}}}}}))
    run = lab_play("preflight.yml", extra_inventory=str(extra))
    assert run.returncode != 0
    assert f"two or more active back-ends on one share: {ACTIVE}, {STANDBY}" in run.stdout
    assert mailman_state(STANDBY) == ("masked", "inactive")
    figure(f"preflight.yml with {ACTIVE} and {STANDBY} both active: refused, {STANDBY} still masked")


def test_failover_delivers_every_waiting_post_exactly_once(periodic_list, figure):
    """Posts wait in the shared queue (the active back-end's out runner paused, then Mailman stopped
    with them) and in the active back-end's Postfix (sent while Mailman is down); failover.yml makes
    the standby active: every member gets exactly one copy of each post, and every queue empties;
    the periodic jobs now run on the new back-end, once. The next test moves Mailman back (after a
    failure here, this one does)."""
    old = lab_host(ACTIVE)
    queued = [f"failover-q-{uuid.uuid4().hex[:10]}" for _ in range(3)]
    deferred = [f"failover-d-{uuid.uuid4().hex[:10]}" for _ in range(3)]
    files: list[str] = []
    moved = False
    try:
        old.check_output("pkill -STOP -f -- 'runner=[o]ut'")
        for token in queued:
            post(LIST, token)
        deadline = time.monotonic() + 180
        while mailman_waiting(ACTIVE).get("out", 0) < len(queued) and time.monotonic() < deadline:
            time.sleep(1)
        in_queue = mailman_waiting(ACTIVE).get("out", 0)
        assert in_queue >= len(queued), f"only {in_queue} posts reached Mailman's out queue"
        # Mailman stops with the posts in its queue: the paused out runner is killed, not drained.
        old.check_output("systemctl stop --no-block mailman3; sleep 1; pkill -KILL -f -- 'runner=[o]ut'")
        # Stopped with a runner killed under it, the unit ends "inactive" or "failed" (the master's exit
        # status decides): both mean no Mailman runs there.
        deadline = time.monotonic() + 90
        while mailman_state(ACTIVE)[1] not in DOWN and time.monotonic() < deadline:
            time.sleep(1)
        assert mailman_state(ACTIVE)[1] in DOWN
        assert not any(copies(t) for t in queued), "a post left before the failover"
        for token in deferred:
            post(LIST, token)
        deadline = time.monotonic() + 120
        while queue_size(ACTIVE) < len(deferred) and time.monotonic() < deadline:
            time.sleep(1)
        held = queue_size(ACTIVE)
        figure(f"before the failover: {in_queue} posts in Mailman's shared out queue, "
               f"{held} in {ACTIVE}'s Postfix")
        assert held >= len(deferred)

        t0 = time.monotonic()
        run = lab_play("failover.yml", "-e", f"backend={STANDBY}")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        figure(f"failover.yml to {STANDBY}: {time.monotonic() - t0:.0f} s")

        assert mailman_state(STANDBY) == ("enabled", "active")
        enabled, active = mailman_state(ACTIVE)
        assert (enabled, active in DOWN) == ("masked", True), (enabled, active)
        assert lab_host(STANDBY).file(MARKER).content_string.strip() == STANDBY
        first = {}
        for token in queued + deferred:
            found = wait_copies(token, len(MEMBERS), timeout=180)
            files += found
            first[token] = sorted(recipients(found))
        # Counted again once every Postfix queue of the site and every Mailman queue on the new
        # active back-end emptied by itself: a duplicate still queued at the first count shows now.
        settle = settled()
        recount = {}
        for token in queued + deferred:
            found = copies(token)
            files += found
            recount[token] = sorted(recipients(found))
        delivered = sum(len(set(got)) for got in recount.values())
        duplicates = sum(len(got) - len(set(got)) for got in recount.values())
        figure(
            f"{delivered}/{len(MEMBERS) * len(recount)} copies delivered, {duplicates} duplicates "
            f"({sum(map(len, first.values()))} at the first count); every queue empty {settle:.0f} s later"
        )
        assert all(got == sorted(MEMBERS) for got in first.values()), first
        assert all(got == sorted(MEMBERS) for got in recount.values()), recount
        # The periodic jobs moved with Mailman: one digest, one notice, now from the new back-end.
        figure(periodic_day(periodic_list, "after the failover"))
        moved = True
    finally:
        old.run("pkill -CONT -f -- 'runner=[o]ut'")
        delete(files)
        if not moved:  # the lab as the inventory says, for the tests that follow
            back = lab_play("failover.yml", "-e", f"backend={ACTIVE}")
            assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-2000:]


NETWORK = HOSTVARS[ACTIVE]["lab__network_name"]


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def boot_after_power_cut(host: str, timeout: float = 180) -> str:
    """The host's container killed as a power cut would (frozen or not), put back on the lab network
    at its address, started; waits until systemd finished booting and returns its state (running
    or degraded)."""
    container = f"mailstack-lab-{host}"
    if docker("inspect", "-f", "{{.State.Running}}", container) == "true":
        docker("kill", container)
    networks = docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", container)
    if NETWORK not in json.loads(networks):
        docker("network", "connect", "--ip", address(host), NETWORK, container)
    docker("start", container)
    deadline = time.monotonic() + timeout
    while True:
        state = lab_host(host).run("systemctl is-system-running").stdout.strip()
        if state in ("running", "degraded"):
            return state
        assert time.monotonic() < deadline, f"{host} did not finish booting: {state}"
        time.sleep(2)


def test_a_backend_cut_off_is_fenced_and_runs_no_mailman_after_its_reboot(periodic_list, figure):
    """The active back-end is cut off (its container frozen and off the network: Ansible cannot
    reach it, the MX nodes cannot connect) and failover.yml moves Mailman to the inventory's active
    back-end with the cut-off one left out (--limit), as docs/runbooks/failover.md says: the share's
    export is narrowed to the new back-end. The old host then comes back as after a power cut: systemd
    refuses to start Mailman there (the share names the other back-end), the runner check restarts
    nothing and its periodic jobs are skipped; a post sent while it was cut off and one after its
    return reach every member exactly once, and every queue ends empty, its own included. Then
    failover.yml to the same back-end again, with the old one answering, makes it a masked standby
    and opens the share to it again."""
    if active_backend() == ACTIVE:  # the previous test failed back: move Mailman away first
        run = lab_play("failover.yml", "-e", f"backend={STANDBY}")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    cut, new = STANDBY, ACTIVE
    # Neither stopped (left out) nor fenced (the storage host left out too, and no -e fenced=): refused
    # before Mailman starts anywhere.
    run = lab_play("failover.yml", "-e", f"backend={new}", "--limit", f"all:!{cut}:!{STORE}")
    assert run.returncode != 0
    assert (f"{cut} did not answer, so Mailman could not be stopped there, and the share could not be "
            f"narrowed to {new}") in flat(run.stdout), run.stdout[-3000:]
    assert f"-e fenced={cut}" in flat(run.stdout)
    assert (mailman_state(cut), mailman_state(new)) == (("enabled", "active"), ("masked", "inactive"))
    figure(f"failover.yml to {new} with {cut} and {STORE} left out, no fenced=: refused, nothing started")
    container = f"mailstack-lab-{cut}"
    during, after = (f"cutoff-{when}-{uuid.uuid4().hex[:10]}" for when in ("during", "after"))
    docker("pause", container)
    docker("network", "disconnect", NETWORK, container)
    down = True
    try:
        post(LIST, during)  # the MX nodes still send to the cut-off back-end: it waits in their queue
        t0 = time.monotonic()
        run = lab_play("failover.yml", "-e", f"backend={new}", "--limit", f"all:!{cut}")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        figure(f"failover.yml to {new} with {cut} cut off and left out: {time.monotonic() - t0:.0f} s")
        exports = lab_host(STORE).check_output("cat /etc/ganesha/mailstack-exports.conf")
        assert f"Clients = {address(new)};" in exports, exports

        # The power comes back: killed while frozen, on its network again, booted.
        down = False
        state = boot_after_power_cut(cut)
        old = lab_host(cut)
        unit = {p: old.check_output(f"systemctl show -p {p} --value mailman3")
                for p in ("ActiveState", "Result", "UnitFileState")}
        refused = old.check_output("journalctl -b -u mailman3 --no-pager -o cat")
        want = {"ActiveState": "inactive", "Result": "exec-condition", "UnitFileState": "enabled"}
        assert unit == want, unit
        assert f"the shared data belongs to {new} ({MARKER}), not to {cut}" in refused, refused
        old.check_output("systemctl start mailman3-runners.service")  # the check restarts nothing
        assert mailman_state(cut)[1] in DOWN
        figure(f"{cut} booted ({state}): mailman3 enabled, its start refused by systemd (exec-condition), "
               "not started by the runner check")

        post(LIST, after)
        # Each counted when it arrived and again once every queue of the site, the old back-end's
        # Postfix included, emptied by itself.
        # Seen once (mx1's log): the MX's delivery attempt to the cut-off back-end was still running
        # (a connect that ended "No route to host") when failover.yml's mx.yml reloaded its Postfix;
        # the new queue manager skipped the message as "still being delivered" and took it again
        # 300 s later, though its backoff is 10 s here: it arrived 273 s after the reboot. The
        # deadline leaves room beyond that.
        exactly_once(during, MEMBERS, f"post sent while {cut} was cut off", figure, timeout=600)
        exactly_once(after, MEMBERS, f"post sent after {cut}'s return", figure)
        # Both back-ends' timers fire: the job runs on the new back-end only.
        figure(periodic_day(periodic_list, f"{cut} back after the cut"))
    finally:
        if down:  # failed while it was cut off: bring it back all the same
            boot_after_power_cut(cut)
        # The operator's step once the old back-end answers again (docs/runbooks/failover.md).
        t0 = time.monotonic()
        back = lab_play("failover.yml", "-e", f"backend={new}")
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-2000:]
    exports = lab_host(STORE).check_output("cat /etc/ganesha/mailstack-exports.conf")
    figure(f"failover.yml to {new} again with {cut} answering: {time.monotonic() - t0:.0f} s, {cut} "
           f"{'/'.join(mailman_state(cut))}, the share open to both again")
    assert mailman_state(new) == ("enabled", "active")
    assert mailman_state(cut) == ("masked", "inactive")
    assert f"Clients = {address(ACTIVE)}, {address(STANDBY)};" in exports, exports


@dataclass
class PeriodicList:
    """A list with digest members and a moderator, for the periodic jobs' drill."""

    name: str
    digest_members: set[str]
    moderators: set[str]

    @property
    def list_id(self) -> str:
        return f"{self.name}.lists.mailstack.test"

    @property
    def address(self) -> str:
        return f"{self.name}@lists.mailstack.test"


@pytest.fixture(scope="module")
def periodic_list():
    """Made on the active back-end through Mailman's REST API (the inventory's lists are left as
    they are), deleted at the end of the module wherever Mailman then runs."""
    name = f"periodic-{uuid.uuid4().hex[:8]}"
    plist = PeriodicList(name, {f"digest-{i}-{name}@remote-{'ab'[i]}.test" for i in range(2)},
                         {f"moderator-{name}@remote-a.test"})
    mailman_rest(ACTIVE, "POST", "lists", {"fqdn_listname": plist.address})
    try:
        mailman_rest(ACTIVE, "PATCH", f"lists/{plist.list_id}/config", {
            # No immediate notice to the moderators or the poster: only the periodic notice is counted.
            "digests_enabled": "true", "digest_send_periodic": "true", "admin_immed_notify": "false",
            "respond_to_post_requests": "false",
            "default_member_action": "accept", "default_nonmember_action": "hold"})
        for member in plist.digest_members:
            mailman_rest(ACTIVE, "POST", "members", {
                "list_id": plist.list_id, "subscriber": member, "delivery_mode": "mime_digests",
                "pre_verified": "true", "pre_confirmed": "true", "pre_approved": "true"})
        for moderator in plist.moderators:
            mailman_rest(ACTIVE, "POST", "members", {
                "list_id": plist.list_id, "subscriber": moderator, "role": "moderator"})
        roster = mailman_rest(ACTIVE, "GET", f"lists/{plist.list_id}/roster/member")["entries"]
        modes = {m["email"]: m["delivery_mode"] for m in roster}
        assert modes == dict.fromkeys(plist.digest_members, "mime_digests"), modes
        yield plist
    finally:
        mailman_rest(active_backend(), "DELETE", f"lists/{plist.list_id}")


def periodic_day(plist: PeriodicList, tag: str) -> str:
    """One day of the periodic jobs on the list: a member's post (collected for the digest) and a
    non-member's post (held for the moderators); then both back-ends' timers fire at once, as at
    08:00 and 12:00 (a standby's runs are skipped). Counts, after the site settled, the digests each
    digest member got and the notices each moderator got; deletes them; returns the figure."""
    active = active_backend()
    digest_token, held_token = f"digest-{tag}-{uuid.uuid4().hex[:8]}", f"held-{tag}-{uuid.uuid4().hex[:8]}"
    mx = f"{MX[0]}.lab.mailstack.test"
    send(internet(), mx, sorted(plist.digest_members)[0], [plist.address], [digest_token])
    send(internet(), mx, "stranger@remote-b.test", [plist.address], [held_token])
    mbox = f"{SHARE}/lists/{plist.list_id}/digest.mmdf"
    deadline, digest, held = time.monotonic() + 120, False, []
    while time.monotonic() < deadline:
        held = mailman_rest(active, "GET", f"lists/{plist.list_id}/held").get("entries", [])
        digest = lab_host(active).run(f"grep -qF {digest_token} {mbox}").rc == 0
        if digest and any(held_token in (h.get("subject") or "") for h in held):
            break
        time.sleep(2)
    else:
        raise AssertionError(f"{tag}: the post reached the digest: {digest}; the held queue: {held}")
    jobs = ["mailman3-notify.service", "mailman3-digests.service"]
    procs = [subprocess.Popen(["docker", "exec", f"mailstack-lab-{h}", "systemctl", "start", *jobs])
             for h in BACKENDS]
    assert [p.wait(timeout=300) for p in procs] == [0] * len(BACKENDS)
    ran = {h: lab_host(h).check_output(f"systemctl show -p Result --value {jobs[1]}") for h in BACKENDS}
    # The job ran where Mailman runs and was skipped by its ExecCondition everywhere else.
    assert ran == {h: "success" if h == active else "exec-condition" for h in BACKENDS}, ran
    wait_copies(digest_token, len(plist.digest_members), timeout=180)
    wait_copies(held_token, len(plist.moderators), timeout=180)
    # A second run's copies would come now: the site settles first, then the count.
    took = settled()
    files = {"digests": copies(digest_token), "notices": copies(held_token)}
    try:
        got = {kind: headers(found) for kind, found in files.items()}
    finally:
        delete(files["digests"] + files["notices"])
    counted = {kind: sorted(c["to"] for c in got[kind]) for kind in got}
    subjects = {kind: {" ".join((c["subject"] or "").split()) for c in got[kind]} for kind in got}
    assert counted == {"digests": sorted(plist.digest_members), "notices": sorted(plist.moderators)}, counted
    assert all("Digest, Vol" in s for s in subjects["digests"]), subjects
    assert all("moderation requests waiting" in s for s in subjects["notices"]), subjects
    return (
        f"{tag}, {active} active: the digest job's result {ran}; {len(counted['digests'])} digests to "
        f"{len(plist.digest_members)} digest members, {len(counted['notices'])} notice to "
        f"{len(plist.moderators)} moderator, counted after the site settled ({took:.0f} s)"
    )


def test_the_periodic_jobs_run_once_with_both_backends_up(periodic_list, figure):
    """Digests and moderators' notices go out once a day, not once per back-end: Debian's cron jobs
    are gone from every back-end, and the timers that replace them run the jobs only where Mailman
    runs (the failover test below counts again after failover.yml)."""
    for host in BACKENDS:
        assert not lab_host(host).file("/etc/cron.d/mailman3").exists, host
        assert lab_host(host).service("mailman3-digests.timer").is_enabled, host
    figure(periodic_day(periodic_list, "both-up"))
