#!/usr/bin/env python3
"""Issue 37, step 1: where Mailman's time goes while one post goes out to a big list.

    .venv/bin/python bench/mailman_profile.py [--list huge] [--rate 100] [--top 8] [--no-write]

Needs a converged lab (`scripts/lab ensure`) and py-spy (requirements.txt), run as root on the
docker host: py-spy reads the runners' memory from outside their containers (they have no
CAP_SYS_PTRACE). One post goes from the internet host to the list, as bench/fanout.py sends it;
meanwhile
  - py-spy samples Mailman's in, pipeline and out runners on the active back-end (`--idle`: a
    runner waiting on PostgreSQL or on postfix-out is sampled too; its sleeps on an empty queue
    are counted apart, as "sleeping");
  - PostgreSQL's pg_stat_statements counts every statement of Mailman's database: the extension is
    loaded for the run (shared_preload_libraries, a restart of PostgreSQL before the post) and
    removed again after it (another restart).
The tables: the post's stages (bench/fanout.py's columns); for each runner, its samples and the
functions of Mailman (and of SQLAlchemy, psycopg2, smtplib below them) that the most samples
passed through (inclusive share of its working samples), by file:function; and the statements
PostgreSQL ran most often, with their calls per member. Writes the section "profile" of
docs/benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import collections
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import fanout
from benchlib import command_line, machine, markdown_table, text_table, write_section

RUNNERS = ("in", "pipeline", "out")
# Frames worth naming: Mailman's own code and what it calls for the database and for SMTP.
NAMED = ("/mailman/", "/sqlalchemy/", "/psycopg2/", "smtplib.py")
# The runner's loop itself (on every working stack) and the program's entry: not listed.
LOOP = ("/mailman/core/runner.py", "/mailman/bin/", "/click/", "<module>")
# A runner's sleep on an empty queue (Runner._snooze, the retry runner's own) is not work.
SLEEPING = "_snooze ("
DB = "mailman"
PSQL = "runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1"


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.access(found, os.X_OK):
        sys.exit("profile: py-spy not found (pip install -r requirements.txt)")
    return found


def runner_pids(active: str) -> dict[str, int]:
    """Host PIDs of the active back-end's in, pipeline and out runners (docker top)."""
    out = subprocess.run(
        ["docker", "top", fanout.LAB + active, "-eo", "pid,args"], capture_output=True, text=True, check=True
    ).stdout
    pids = {}
    for line in out.splitlines()[1:]:
        pid, _, args = line.strip().partition(" ")
        for name in RUNNERS:
            if f"--runner={name}:" in args:
                pids[name] = int(pid)
    missing = [name for name in RUNNERS if name not in pids]
    if missing:
        sys.exit(f"profile: no {missing} runner on {active} (is Mailman running?)")
    return pids


def sql(db_host: str, statement: str, database: str = "postgres") -> str:
    return fanout.docker(db_host, f"{PSQL} -d {database} -c {shlex.quote(statement)}")


def restart_postgresql(db_host: str) -> None:
    fanout.docker(db_host, "systemctl restart 'postgresql@*' && until pg_isready -q; do sleep 0.5; done")


def load_statements(db_host: str) -> None:
    sql(db_host, "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    restart_postgresql(db_host)
    sql(db_host, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements", DB)


def unload_statements(db_host: str) -> None:
    sql(db_host, "DROP EXTENSION IF EXISTS pg_stat_statements", DB)
    sql(db_host, "ALTER SYSTEM RESET shared_preload_libraries")
    restart_postgresql(db_host)


def statements(db_host: str, top: int) -> tuple[int, float, list[tuple[int, float, str]]]:
    """(calls, ms) of every statement in Mailman's database since the reset, and the top ones."""
    where = f"dbid = (SELECT oid FROM pg_database WHERE datname = '{DB}')"
    total = sql(db_host, f"SELECT sum(calls), sum(total_exec_time) FROM pg_stat_statements WHERE {where}", DB)
    calls, ms = total.split("|")
    rows = sql(
        db_host,
        "SELECT calls, total_exec_time, regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements "
        f"WHERE {where} ORDER BY calls DESC LIMIT {top}",
        DB,
    )
    listed = []
    for line in rows.splitlines():
        n, t, query = line.split("|", 2)
        listed.append((int(n), float(t), query))
    return int(calls or 0), float(ms or 0), listed


def frame_name(frame: str) -> str:
    """'function (path/to/file.py:123)' -> 'file.py:function' (the package's last directory kept)."""
    function, _, where = frame.rpartition(" (")
    path = where.rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{short}:{function}"


def parse_raw(text: str) -> tuple[int, int, collections.Counter]:
    """py-spy's raw output (one 'frame;frame;... count' line per stack, root first): (samples,
    sleeping samples, {frame name: working samples that passed through it})."""
    total = sleeping = 0
    through: collections.Counter = collections.Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        if any(SLEEPING in frame for frame in frames):
            sleeping += n
            continue
        named = [f for f in frames if any(m in f for m in NAMED) and not any(m in f for m in LOOP)]
        for name in {frame_name(f) for f in named}:
            through[name] += n
    return total, sleeping, through


def record(pids: dict[str, int], rate: int, workdir: Path) -> dict[str, subprocess.Popen]:
    spy = py_spy()
    procs = {}
    for name, pid in pids.items():
        out = workdir / f"{name}.txt"
        procs[name] = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--idle",
                "--full-filenames",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    time.sleep(2)
    for name, proc in procs.items():
        if proc.poll() is not None:
            sys.exit(f"profile: py-spy on the {name} runner ended: {proc.stderr.read()[:500]}")
    return procs


def stop(procs: dict[str, subprocess.Popen], workdir: Path) -> dict[str, str]:
    for proc in procs.values():
        proc.send_signal(signal.SIGINT)
    raw = {}
    for name, proc in procs.items():
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        path = workdir / f"{name}.txt"
        if not path.exists():
            sys.exit(f"profile: py-spy wrote nothing for the {name} runner: {proc.stderr.read()[:500]}")
        raw[name] = path.read_text()
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--list", default="huge", choices=sorted(fanout.LISTS))
    parser.add_argument("--rate", type=int, default=100, help="py-spy's samples per second")
    parser.add_argument("--top", type=int, default=8, help="rows per runner and statements listed")
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    args = parser.parse_args()
    hosts, active, internet = fanout.lab()
    db_host = hosts["db"][0]
    members = fanout.LISTS[args.list]
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = machine()
    load_statements(db_host)
    try:
        # Uncounted: the first post after PostgreSQL's restart opens the runners' connections again.
        fanout.post_once(internet, "announce", fanout.LISTS["announce"], hosts, active)
        pids = runner_pids(active)
        sql(db_host, "SELECT pg_stat_statements_reset()", DB)
        with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
            procs = record(pids, args.rate, Path(tmp))
            try:
                stages = fanout.post_once(internet, args.list, members, hosts, active)
            finally:
                raw = stop(procs, Path(tmp))
        calls, ms, top_statements = statements(db_host, args.top)
    finally:
        unload_statements(db_host)

    stage_header = [
        "list (members)",
        *(label for _, label in fanout.STAGES),
        "Mailman CPU s",
        "PostgreSQL CPU s",
    ]
    stage_row = [
        f"{args.list} ({members})",
        *(f"{stages[k]:.2f}" for k, _ in fanout.STAGES),
        f"{stages['mailman_cpu']:.2f}",
        f"{stages['db_cpu']:.2f}",
    ]
    runner_rows = []
    for name in RUNNERS:
        total, sleeping, through = parse_raw(raw[name])
        working = total - sleeping
        runner_rows.append(
            (name, "(all)", f"{total} samples", f"{working} working", f"{working / args.rate:.1f} s")
        )
        for frame, n in through.most_common(args.top):
            share = 100 * n / working if working else 0
            runner_rows.append((name, frame, f"{n}", f"{share:.0f} %", f"{n / args.rate:.1f} s"))
    statement_rows = [
        (f"{n}", f"{n / members:.2f}", f"{t:.0f}", (q[:110] + "...") if len(q) > 110 else q)
        for n, t, q in top_statements
    ]
    summary = (
        f"{calls} statements in Mailman's database for {members} members: {calls / members:.2f} per "
        f"member, {ms:.0f} ms of execution in PostgreSQL"
    )
    runner_header = ["runner", "function (inclusive)", "samples", "of working", "seconds"]
    statement_header = ["calls", "per member", "ms", "statement"]
    print(text_table(stage_header, [stage_row]))
    print(text_table(runner_header, runner_rows))
    print(summary)
    print(text_table(statement_header, statement_rows))
    if args.no_write:
        return
    body = (
        "## Where Mailman's time goes in a big post (issue 37, step 1)\n\n"
        f"Written by `{command_line('mailman_profile.py', sys.argv[1:])}` on {started}. "
        f"Machine: {load_before} "
        f"(before), {machine()} (after). One post to the lab's {members}-member list, the lab as "
        f"converged (active back-end {active}); py-spy sampled the in, pipeline and out runners "
        f"{args.rate} times a second with `--idle` (waiting on PostgreSQL or SMTP counts; a sleep on "
        'an empty queue does not: "working"); PostgreSQL\'s pg_stat_statements counted the statements '
        "of Mailman's database, loaded for the run only.\n\n"
        "The post's stages (seconds after the MX's 250, as in the fan-out section):\n\n"
        + markdown_table(stage_header, [stage_row])
        + "\nThe functions (Mailman's, SQLAlchemy's, psycopg2's, smtplib's) that the most working samples "
        "of each runner passed through:\n\n"
        + markdown_table(runner_header, runner_rows)
        + f"\n{summary}. The statements run most often:\n\n"
        + markdown_table(
            statement_header, [(*r[:3], "`" + r[3].replace("|", "\\|") + "`") for r in statement_rows]
        )
    )
    print(f"written to {write_section('profile', body)}")


if __name__ == "__main__":
    main()
