#!/usr/bin/env python3
"""SMTP acceptance of every Postfix path mailstack builds, side by side in one container.

    .venv/bin/python bench/smtp_acceptance.py [--repeats 3] [--seconds 2] [--keep] [--reuse] [--relay]

One container from mailstack/base:bookworm (systemd) on the docker network bench-smtp
(172.31.19.0/24), converged with the project's real roles (bench/smtp_acceptance/converge.yml:
clamav, rspamd, postfix), runs these paths at once, each on its own port:

  smtp-sink        Postfix's smtp-sink: the protocol limit of this machine (no queue)
  postfix-out      the back-end's loopback_unchecked instance, as the postfix role renders it
  postfix-untuned  the same with every tuning of the profile set back to its stock value
  scanning         the MX path: the inbound_scanning primary (postscreen, smtpd) with the
                   rspamd milter, which hands every whole message to clamd
  stock            a Postfix instance with the role's base main.cf (Debian's values) and a relayhost
  postfix-no-X     postfix-out with the one tuning X set back to its stock value (--ablation)
  postfix-relay    the relay profile delivering to the sink, and its variants (--relay only)

Every instance relays what it accepts to a second smtp-sink (127.0.0.1:2525), which discards it:
a run ends when smtp-source has its last 250 (accepted) and the instance's queue is empty
(relayed). smtp-source (inside the container) sends 1, 5 or 50 recipients per message, 4 KiB or
40 KiB bodies, over 1 or 20 parallel sessions, one message per connection (its default; with
--kept-connection each session keeps its connection, as Mailman's out runner does). Each
measured run sends what the path accepts in about --seconds (sized by two warm-up runs), --repeats times,
paths interleaved; the table shows medians. CPU per message is the CPU time (cgroup cpu.stat) of
the path's systemd units (the Postfix instance with all its processes, rspamd and clamd for the
scanning path) plus systemd-journald, from the first SMTP connection to the empty queue, divided
by the messages. The table is printed and written into docs/benchmarks/README.md, with a chart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    DOCS,
    ROOT,
    Cell,
    machine,
    markdown_table,
    median,
    parse_cell,
    parse_loadavg,
    ratio,
    text_table,
    write_section,
)

HERE = Path(__file__).resolve().parent / "smtp_acceptance"
CONTAINER = "bench-smtp"
NETWORK = "bench-smtp"
SUBNET = "172.31.19.0/24"
ADDRESS = "172.31.19.10"
IMAGE = "mailstack/base:bookworm"
LABEL = "mailstack.bench"
SYSTEMD_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--stop-signal", "SIGRTMIN+3",
]  # fmt: skip
RELAY_SINK = "[127.0.0.1]:2525"
SINK_PORT = 2600
JOURNALD = "systemd-journald.service"
PROFILE = ROOT / "roles" / "postfix" / "defaults" / "main" / "profile_loopback_unchecked.yml"

# The tunings of the loopback_unchecked profile and their stock values: None drops the profile's
# entry (Postfix's default applies); a string is the stock value (Debian's main.cf, which the
# role's base layer restates, says smtpd_tls_security_level = may). The profile's other entries
# are what a loopback relay needs (listener, networks, no local delivery, no restrictions: the
# stock smtpd restrictions are empty too) and stay in every variant.
# tests/unit/test_benchlib.py checks that each name is in the profile.
TUNINGS: list[tuple[str, str | None]] = [
    ("in_flow_delay", None),
    ("maillog_file", None),
    ("smtpd_peername_lookup", None),
    ("smtpd_tls_security_level", "may"),
    ("smtpd_delay_reject", None),
    ("smtp_connect_timeout", None),
]


# The relay profile's settings that differ from Postfix's defaults for speed or capacity, set back
# alone in the relay instances (--relay). Its other entries are delivery policy (per-provider
# limits, timeouts, backoff, queue lifetimes, TLS) that a single local receiver cannot exercise.
# tests/unit/test_benchlib.py checks that each name is in the profile.
RELAY_PROFILE = ROOT / "roles" / "postfix" / "defaults" / "main" / "profile_relay.yml"
# default_process_limit (200) and smtp_connection_cache_time_limit (5s) were measured here too
# (2026-11-30), changed nothing set back, and left the profile.
RELAY_TUNINGS: list[tuple[str, str | None]] = [
    ("smtpd_delay_reject", None),
    ("smtp_connection_reuse_count_limit", None),
]
RELAY = "postfix-relay"


@dataclass(frozen=True)
class PathSpec:
    name: str
    port: int
    queue: str  # the instance's queue directory, '-' for the sink
    units: tuple[str, ...]  # systemd units whose CPU time is the path's (journald is added)
    what: str


def stock_value(name: str, stock: str | None) -> dict[str, str]:
    return {"name": name, "state": "absent"} if stock is None else {"name": name, "value": stock}


def ablation_name(param: str, base: str = "postfix") -> str:
    return f"{base}-no-" + param.removeprefix("smtpd_").removeprefix("smtp_").replace("_", "-")


def relay_paths() -> list[str]:
    """The relay instances (--relay): as the role renders the profile, every tuning at its stock
    value, and each tuning set back alone."""
    return [RELAY, f"{RELAY}-untuned"] + [ablation_name(p, RELAY) for p, _ in RELAY_TUNINGS]


def paths() -> dict[str, PathSpec]:
    def out(name: str, port: int, what: str) -> PathSpec:
        return PathSpec(name, port, f"/var/spool/{name}", (f"postfix@{name}.service",), what)

    specs = [
        PathSpec("smtp-sink", SINK_PORT, "-", ("bench-sink.service",), "smtp-sink, no queue"),
        out("postfix-out", 10025, "loopback_unchecked as rendered by the role"),
        out("postfix-untuned", 10026, "loopback_unchecked, every tuning at its stock value"),
        PathSpec(
            "scanning",
            25,
            "/var/spool/postfix",
            ("postfix@-.service", "rspamd.service", "clamav-daemon.service"),
            "inbound_scanning + rspamd milter + clamd",
        ),
        PathSpec(
            "stock", 10027, "/var/spool/postfix-stock", ("postfix@postfix-stock.service",), "Debian main.cf"
        ),
    ]
    for index, (param, stock) in enumerate(TUNINGS):
        name = ablation_name(param)
        specs.append(out(name, 10030 + index, f"postfix-out with {param} = {stock or 'default'}"))
    specs.append(out(RELAY, 10040, "the relay profile as rendered by the role, relaying to the sink"))
    specs.append(out(f"{RELAY}-untuned", 10041, "the relay profile, every tuning at its stock value"))
    for index, (param, stock) in enumerate(RELAY_TUNINGS):
        name = ablation_name(param, RELAY)
        specs.append(out(name, 10042 + index, f"{RELAY} with {param} = {stock or 'default'}"))
    return {spec.name: spec for spec in specs}


def instances() -> list[dict]:
    """The postfix role's instance layer for converge.yml (bench_instances)."""
    loopback = {"profile": "loopback_unchecked", "relay_next_hops": [RELAY_SINK]}
    spec = paths()
    result: list[dict] = [
        {"name": "-", "profile": "inbound_scanning", "mynetworks": ["127.0.0.0/8"]},
        {"name": "postfix-out", "port": spec["postfix-out"].port, **loopback},
        {
            "name": "postfix-untuned",
            "port": spec["postfix-untuned"].port,
            **loopback,
            "maincf": [stock_value(p, s) for p, s in TUNINGS],
        },
        {
            "name": "postfix-stock",
            "port": spec["stock"].port,
            "maincf": [
                {"name": "inet_interfaces", "value": "127.0.0.1"},
                {"name": "inet_protocols", "value": "ipv4"},
                {"name": "mynetworks", "value": ["127.0.0.0/8"]},
                {"name": "relayhost", "value": RELAY_SINK},
            ],
        },
    ]
    for param, stock in TUNINGS:
        name = ablation_name(param)
        result.append(
            {"name": name, "port": spec[name].port, **loopback, "maincf": [stock_value(param, stock)]}
        )
    # The relay profile, delivering everything to the sink (relayhost) instead of by MX lookup.
    relay = {"profile": "relay", "inet_interfaces": "127.0.0.1", "mynetworks": ["127.0.0.0/8"]}
    to_sink = {"name": "relayhost", "value": RELAY_SINK}
    reverted = {RELAY: [], f"{RELAY}-untuned": [stock_value(p, s) for p, s in RELAY_TUNINGS]}
    reverted |= {ablation_name(p, RELAY): [stock_value(p, s)] for p, s in RELAY_TUNINGS}
    for name, maincf in reverted.items():
        result.append({"name": name, "port": spec[name].port, **relay, "maincf": [to_sink, *maincf]})
    return result


# --------------------------------------------------------------------------------------------
# The container


def sh(*cmd: str, check: bool = True) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ...: exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def inside(*cmd: str, check: bool = True) -> str:
    return sh("docker", "exec", CONTAINER, *cmd, check=check)


def create() -> None:
    remove()
    sh("docker", "network", "create", "--driver", "bridge", "--subnet", SUBNET, "--label", LABEL, NETWORK)
    sh(
        "docker", "run", "-d", "--name", CONTAINER, "--hostname", CONTAINER, "--label", LABEL,
        "--network", NETWORK, "--ip", ADDRESS, *SYSTEMD_FLAGS, IMAGE, "/lib/systemd/systemd",
    )  # fmt: skip
    for _ in range(60):
        state = inside("systemctl", "is-system-running", check=False).strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    raise SystemExit(f"{CONTAINER}: systemd did not finish starting ({state})")


def remove() -> None:
    sh("docker", "rm", "-f", "-v", CONTAINER, check=False)
    sh("docker", "network", "rm", NETWORK, check=False)


def converge(log: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-smtp-") as secret:
        extra = {
            "bench_secret_dir": secret,
            "bench_domains": ["bench.test"],
            "bench_relay_sink": RELAY_SINK,
            "bench_instances": instances(),
        }
        vars_file = Path(secret) / "vars.json"
        vars_file.write_text(json.dumps(extra))
        cmd = [
            str(ROOT / ".venv" / "bin" / "ansible-playbook"),
            "-i", str(HERE / "inventory.yml"), str(HERE / "converge.yml"), "-e", f"@{vars_file}",
        ]  # fmt: skip
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_HOME": str(ROOT / ".cache" / "ansible"),
            "XDG_CACHE_HOME": str(ROOT / ".cache" / "xdg"),
        }
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
        if rc.returncode != 0:
            raise SystemExit(f"converge failed (exit {rc.returncode}), see {log}")


def start_sinks() -> None:
    sh("docker", "cp", str(HERE / "run-cell.sh"), f"{CONTAINER}:/usr/local/bin/bench-run-cell")
    for unit, port in (("bench-relay-sink", 2525), ("bench-sink", SINK_PORT)):
        inside("systemctl", "stop", unit, check=False)
        inside("systemctl", "reset-failed", unit, check=False)
        inside(
            "systemd-run", "--unit", unit, "/usr/sbin/smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "256"
        )
    needed = [spec.port for spec in paths().values()]
    for _ in range(50):
        listening = inside("ss", "-Hltn")
        if all(f":{port} " in listening for port in needed):
            return
        time.sleep(0.2)
    raise SystemExit(f"not every path listens: {needed}")


def run_cell(spec: PathSpec, messages: int, shape: Shape) -> Cell:
    out = inside(
        "bench-run-cell", *(["-d"] if shape.kept else []), str(spec.port), str(messages), str(shape.sessions),
        str(shape.size), str(shape.rcpts), spec.queue, *spec.units, JOURNALD, check=False,
    )  # fmt: skip
    return parse_cell(out)


# --------------------------------------------------------------------------------------------
# The measurement


@dataclass(frozen=True)
class Shape:
    size: int
    rcpts: int
    sessions: int
    kept: bool = False  # one connection per session for all its messages (smtp-source -d)

    @property
    def label(self) -> str:
        return f"{self.size // 1024} KiB, {self.rcpts} rcpt, {self.sessions} sess" + (
            ", kept" if self.kept else ""
        )


@dataclass
class Result:
    messages: int
    runs: list[Cell]

    @property
    def ok(self) -> list[Cell]:
        return [c for c in self.runs if c.rc == 0 and not c.errors]

    def accept_rate(self) -> float:
        return median([self.messages / c.accept_seconds for c in self.ok])

    def relay_rate(self) -> float:
        return median([self.messages / c.relay_seconds for c in self.ok])

    def cpu_ms(self) -> float:
        return median([c.cpu_usec() / 1000 / self.messages for c in self.ok])


def ablation_rows(
    results: dict[tuple[Shape, str], Result], cells: list[Shape], names: list[str], reverted: dict[str, str],
    *, relayed: bool = False,
) -> list[list[str]]:
    """One row per cell and instance against the first name (the profile as rendered): what was set
    back, the accepted rate (and with relayed the relayed rate), the rate ratio (relayed, or
    accepted) and the CPU per message with its difference."""
    table = []
    for shape in cells:
        base = results[(shape, names[0])]
        for name in names:
            r = results[(shape, name)]
            rates = [f"{r.accept_rate():.0f}"] if r.ok else ["failed"]
            if not r.ok:
                table.append([shape.label, name, reverted[name], *rates, *[""] * (4 if relayed else 3)])
                continue
            if relayed:
                rates += [f"{r.relay_rate():.0f}", ratio(r.relay_rate(), base.relay_rate())]
            else:
                rates += [ratio(r.accept_rate(), base.accept_rate())]
            cpu = [f"{r.cpu_ms():.2f}", f"{r.cpu_ms() - base.cpu_ms():+.2f}"]
            table.append([shape.label, name, reverted[name], *rates, *cpu])
    return table


def reverted_labels(
    base: str, untuned: str, prefix: str, tunings: list[tuple[str, str | None]]
) -> dict[str, str]:
    """What each instance of an ablation sets back, by name: base nothing, untuned every tuning,
    ablation_name(param, prefix) its one."""
    labels = {base: "none", untuned: "all of them"}
    return labels | {ablation_name(p, prefix): f"{p} = {s or 'default'}" for p, s in tunings}


def shapes(quick: bool, kept: bool = False) -> list[Shape]:
    if quick:
        return [Shape(4096, 5, 1, kept), Shape(4096, 5, 20, kept)]
    return [Shape(s, r, n, kept) for s in (4096, 40960) for r in (1, 5, 50) for n in (1, 20)]


def measure(
    names: list[str], cells: list[Shape], repeats: int, seconds: float, max_messages: int
) -> dict[tuple[Shape, str], Result]:
    spec = paths()
    results: dict[tuple[Shape, str], Result] = {}
    for shape in cells:  # warm-up: how many messages make a run of about `seconds`
        for name in names:
            # A short cold run, then one of about half a second: its rate sizes the measured runs.
            count = max(2 * shape.sessions, 20)
            for _ in range(2):
                cell = run_cell(spec[name], count, shape)
                if cell.rc != 0 or cell.errors:
                    raise SystemExit(
                        f"{name}, {shape.label}: warm-up failed (rc {cell.rc}): {cell.errors[:5]}"
                    )
                rate = count / cell.accept_seconds
                count = int(min(max_messages, max(count, rate / 2)))
            count = int(min(max_messages, max(5 * shape.sessions, 50, rate * seconds)))
            results[(shape, name)] = Result(count, [])
    for repeat in range(repeats):
        for shape in cells:
            # Paths interleaved, in a rotated order each round: a load change hits all of them.
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                result = results[(shape, name)]
                cell = run_cell(spec[name], result.messages, shape)
                result.runs.append(cell)
                state = "ok" if cell.rc == 0 and not cell.errors else f"FAILED rc {cell.rc} {cell.errors[:3]}"
                print(
                    f"round {repeat + 1} {shape.label:26} {name:28} {result.messages:5} msgs "
                    f"{result.messages / cell.accept_seconds:8.1f} msg/s "
                    f"{cell.cpu_usec() / 1000 / result.messages:6.2f} ms/msg  "
                    f"load {cell.load_after[0]:.2f} {state}",
                    file=sys.stderr,
                    flush=True,
                )
    return results


# --------------------------------------------------------------------------------------------
# The report

GOALS = {"x sink": 0.2, "x stock": 2.0, "x scanning": 4.0, "cpu ms": 4.0}


def rows(results: dict[tuple[Shape, str], Result], names: list[str], cells: list[Shape]) -> list[list[str]]:
    out = []
    for shape in cells:
        sink = results.get((shape, "smtp-sink"))
        stock = results.get((shape, "stock"))
        scanning = results.get((shape, "scanning"))
        for name in names:
            r = results[(shape, name)]
            if not r.ok:
                out.append([shape.label, name, str(r.messages), "failed", "", "", "", "", ""])
                continue
            rate = r.accept_rate()
            out.append(
                [
                    shape.label,
                    name,
                    str(r.messages),
                    f"{rate:.0f}",
                    f"{r.relay_rate():.0f}" if name != "smtp-sink" else "-",
                    f"{r.cpu_ms():.2f}",
                    ratio(rate, sink.accept_rate()) if sink and sink.ok else "-",
                    ratio(rate, stock.accept_rate()) if stock and stock.ok else "-",
                    ratio(rate, scanning.accept_rate()) if scanning and scanning.ok else "-",
                ]
            )
    return out


HEADER = [
    "cell",
    "path",
    "msgs/run",
    "accepted msg/s",
    "relayed msg/s",
    "CPU ms/msg",
    "x sink",
    "x stock",
    "x scanning",
]


def goal_rows(results: dict[tuple[Shape, str], Result], cells: list[Shape]) -> list[list[str]]:
    out = []
    for shape in cells:
        out_r = results[(shape, "postfix-out")]
        if not out_r.ok:
            continue
        rate = out_r.accept_rate()
        row = [shape.label]
        for other, goal in (("smtp-sink", 0.2), ("stock", 2.0), ("scanning", 4.0)):
            base = results.get((shape, other))
            if base is None or not base.ok:
                row.append("-")
                continue
            value = rate / base.accept_rate()
            row.append(f"{value:.2f}x {'met' if value >= goal else 'missed'}")
        cpu = out_r.cpu_ms()
        row.append(f"{cpu:.2f} {'met' if cpu <= 4.0 else 'missed'}")
        out.append(row)
    return out


ABLATION_HEADER = [
    "cell",
    "instance",
    "set back to stock",
    "accepted msg/s",
    "x postfix-out",
    "CPU ms/msg",
    "CPU vs postfix-out",
]
GOAL_HEADER = [
    "cell",
    "postfix-out / smtp-sink (>= 0.2x)",
    "/ stock (>= 2x)",
    "/ scanning (>= 4x)",
    "CPU ms/msg (<= 4)",
]


def chart(results: dict[tuple[Shape, str], Result], names: list[str], cells: list[Shape], png: Path) -> bool:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 8), sharex=True)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [c + i * width for c in range(len(cells))]
        rates = [results[(s, name)].accept_rate() if results[(s, name)].ok else 0 for s in cells]
        cpus = [results[(s, name)].cpu_ms() if results[(s, name)].ok else 0 for s in cells]
        top.bar(xs, rates, width, label=name)
        bottom.bar(xs, cpus, width, label=name)
    top.set_yscale("log")
    top.set_ylabel("accepted msg/s (median, log)")
    bottom.set_ylabel("CPU ms per message (median)")
    bottom.axhline(4.0, color="grey", linestyle="--", linewidth=0.8)
    bottom.set_xticks([c + 0.4 - width / 2 for c in range(len(cells))])
    bottom.set_xticklabels([s.label.replace(", ", "\n") for s in cells], fontsize=8)
    top.legend(fontsize=8, ncol=len(names))
    top.set_title("SMTP acceptance, one container, paths side by side (bench/smtp_acceptance.py)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return True


def save_raw(results: dict[tuple[Shape, str], Result], path: Path) -> None:
    """Every run as measured (bench/results/ is git-ignored), for a second look at the figures."""
    raw = [
        {
            "cell": shape.label,
            "path": name,
            "messages": r.messages,
            "runs": [dataclasses.asdict(c) for c in r.runs],
        }
        for (shape, name), r in results.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw, indent=1))


def host_load() -> tuple[float, float, float]:
    return parse_loadavg(Path("/proc/loadavg").read_text())


def section_head(
    title: str, args: argparse.Namespace, command: str, elapsed: float, converged: float, *, loads: tuple
) -> list[str]:
    """A section's heading, how it was written and the machine's load: (at the start, before the
    first measured run, after the last)."""
    fmt = "{:.2f} {:.2f} {:.2f}"
    start, before, after = (fmt.format(*load) for load in loads)
    return [
        "## SMTP acceptance (issue 15, part 1)" + title
        + (", connections kept (smtp-source -d)" if args.kept_connection else ""),
        "",
        f"Written by `{command.strip()}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{elapsed:.0f} s in all"
        + (
            " (a kept container, converged by an earlier run)."
            if args.reuse
            else f" ({converged:.0f} s to create and converge the container)."
        ),
        "",
        f"Machine: {machine()}; load average (1, 5, 15 min) {start} at the start, {before} before the "
        f"first measured run, {after} after the last. The load average includes the benchmark's own "
        "senders and paths (up to 20 sessions); compare paths within one cell, not with other runs.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="measured runs per cell and path (median)")
    parser.add_argument("--seconds", type=float, default=2.0, help="target length of one run")
    parser.add_argument("--max-messages", type=int, default=4000, help="cap on the messages of one run")
    parser.add_argument("--quick", action="store_true", help="only 4 KiB x 5 rcpt, 1 and 20 sessions")
    parser.add_argument(
        "--kept-connection",
        action="store_true",
        help="each session keeps its connection for all its messages (smtp-source -d), as Mailman does; "
        "writes its own section",
    )
    parser.add_argument("--no-ablation", action="store_true", help="skip the one-tuning-reverted instances")
    parser.add_argument(
        "--relay",
        action="store_true",
        help="only the relay profile's instances, each tuning set back alone; writes its own section",
    )
    parser.add_argument("--reuse", action="store_true", help="use the running container (no create/converge)")
    parser.add_argument("--keep", action="store_true", help="keep the container afterwards")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks alone")
    args = parser.parse_args(argv)
    command = "bench/smtp_acceptance.py " + " ".join(argv if argv is not None else sys.argv[1:])

    t0 = time.monotonic()
    load_start = host_load()
    try:
        if not args.reuse:
            create()
            converge(ROOT / ".cache" / "bench" / "smtp_acceptance-converge.log")
        converged = time.monotonic() - t0
        start_sinks()
        if args.relay:
            return relay_main(args, command, t0, load_start, converged)
        main_paths = ["smtp-sink", "postfix-out", "postfix-untuned", "scanning", "stock"]
        cells = shapes(args.quick, args.kept_connection)
        load_before = host_load()
        results = measure(main_paths, cells, args.repeats, args.seconds, args.max_messages)
        ablation_paths = ["postfix-out", "postfix-untuned"] + [ablation_name(p) for p, _ in TUNINGS]
        ablation_cells = shapes(True, args.kept_connection)
        ablation = (
            {}
            if args.no_ablation
            else measure(ablation_paths, ablation_cells, args.repeats, args.seconds, args.max_messages)
        )
        load_after = host_load()
    finally:
        if not args.keep:
            remove()
    elapsed = time.monotonic() - t0
    save_raw(
        results | ablation,
        ROOT / "bench" / "results" / f"smtp_acceptance-{time.strftime('%Y%m%dT%H%M%S')}.json",
    )

    table = rows(results, main_paths, cells)
    goals = goal_rows(results, cells)
    print(text_table(HEADER, table))
    print(text_table(GOAL_HEADER, goals))
    ablation_table: list[list[str]] = []
    if ablation:
        reverted = reverted_labels("postfix-out", "postfix-untuned", "postfix", TUNINGS)
        ablation_table = ablation_rows(ablation, ablation_cells, ablation_paths, reverted)
        print(
            text_table(
                ABLATION_HEADER,
                ablation_table,
            )
        )
    fmt = "{:.2f} {:.2f} {:.2f}"
    print(
        f"load average: {fmt.format(*load_before)} before, {fmt.format(*load_after)} after; "
        f"{elapsed:.0f} s in all"
    )
    if args.no_write:
        return 0

    suffix = "-kept-connection" if args.kept_connection else ""
    png = DOCS / f"smtp-acceptance{suffix}.png"
    charted = chart(results, main_paths, cells, png)
    body = [
        *section_head("", args, command, elapsed, converged, loads=(load_start, load_before, load_after)),
        "One container (`mailstack/base:bookworm`, systemd) converged with the real roles "
        "(`bench/smtp_acceptance/converge.yml`: clamav with its offline signature file, rspamd offline, "
        "postfix); every path on its own port, all running at once, driven in turn by `smtp-source` "
        "inside the container ("
        + (
            "each session keeps one connection for all its messages, as Mailman's out runner does"
            if args.kept_connection
            else "one message per connection"
        )
        + "). **Accepted** = smtp-source's wall time "
        "until its last `250` after DATA; **relayed** = until the instance's queue is empty, every "
        "message delivered to a second smtp-sink on 127.0.0.1:2525 that discards it (smtp-sink has "
        "no queue: accepted is all it does). **CPU ms/msg** = CPU time (cgroup `cpu.stat`) of the "
        "path's systemd units (the Postfix instance's unit holds all its processes; rspamd and clamd "
        "for the scanning path) plus systemd-journald, from the first connection to the empty queue, "
        "per message; smtp-source's and the discarding sink's CPU are not counted. Medians of "
        f"{args.repeats} runs per cell and path, paths interleaved; `msgs/run` is what the path accepts "
        f"in about {args.seconds:g} s (sized by two warm-up runs), capped at {args.max_messages}.",
        "",
        "Paths: " + "; ".join(f"`{n}`: {paths()[n].what}" for n in main_paths) + ".",
        "",
        markdown_table(HEADER, table),
        "Goals of issue 15 for `postfix-out`:",
        "",
        markdown_table(GOAL_HEADER, goals),
    ]
    if charted:
        body += [f"![SMTP acceptance]({png.name})", ""]
    else:
        body += ["(No chart: matplotlib is not installed in the venv.)", ""]
    if ablation_table:
        body += [
            "### Each tuning of `loopback_unchecked`, set back alone",
            "",
            "Instances identical to `postfix-out` except for one parameter at its stock value "
            "(`postfix-untuned`: all of them), measured in the same way, in the same run:",
            "",
            markdown_table(
                ABLATION_HEADER,
                ablation_table,
            ),
        ]
    path = write_section("smtp_acceptance" + suffix.replace("-", "_"), "\n".join(body))
    print(f"written: {path}" + (f", {png}" if charted else ""))
    return 0


RELAY_HEADER = [
    "cell", "instance", "set back to stock", "accepted msg/s", "relayed msg/s",
    f"relayed x {RELAY}", "CPU ms/msg", f"CPU vs {RELAY}",
]  # fmt: skip


def relay_main(
    args: argparse.Namespace, command: str, t0: float, load_start: tuple, converged: float
) -> int:
    """--relay: the relay profile's instances on the ablation cells; writes the section
    smtp_acceptance_relay. Runs inside main's try (the container is removed unless --keep)."""
    names = relay_paths()
    cells = shapes(True, args.kept_connection)
    load_before = host_load()
    results = measure(names, cells, args.repeats, args.seconds, args.max_messages)
    load_after = host_load()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    save_raw(results, ROOT / "bench" / "results" / f"smtp_acceptance-relay-{stamp}.json")
    reverted = reverted_labels(RELAY, f"{RELAY}-untuned", RELAY, RELAY_TUNINGS)
    table = ablation_rows(results, cells, names, reverted, relayed=True)
    print(text_table(RELAY_HEADER, table))
    fmt = "{:.2f} {:.2f} {:.2f}"
    elapsed = time.monotonic() - t0
    loads = f"{fmt.format(*load_before)} before, {fmt.format(*load_after)} after"
    print(f"load average: {loads}; {elapsed:.0f} s in all")
    if args.no_write:
        return 0
    body = [
        *section_head(
            ": the relay profile's tunings",
            args, command, elapsed, converged, loads=(load_start, load_before, load_after),
        ),
        "The same container and method as above, on the relay profile: instances rendered by the role "
        "with `profile: relay` on loopback, each delivering everything it accepts to the discarding "
        "smtp-sink (`relayhost`), so **relayed** is the relay's delivery rate to one destination "
        "with a backlog (the connection cache's case). `postfix-relay-untuned` has every tuning below "
        "at Postfix's default; each other instance sets back one. The profile's other settings are "
        "delivery policy (per-provider concurrency, timeouts, backoff, queue lifetimes, TLS) that one "
        f"local receiver cannot exercise. Medians of {args.repeats} runs per cell and instance.",
        "",
        markdown_table(RELAY_HEADER, table),
    ]
    section = "smtp_acceptance_relay" + ("_kept_connection" if args.kept_connection else "")
    print(f"written: {write_section(section, chr(10).join(body))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
