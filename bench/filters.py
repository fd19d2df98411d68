#!/usr/bin/env python3
"""Benchmark the Postfix filters: Debian's default master.cf plus N extra services.

    .venv/bin/python bench/filters.py [--extra 500] [--runs 20]

Prints a small table: mean, best and worst time per call of each step, over --runs runs.
tests/unit/test_postfix_filters.py::test_benchmark_well_under_a_second asserts on `measure()`.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_MASTER_CF = ROOT / "tests" / "unit" / "data" / "debian-master.cf"


def load_filters() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "mailstack_postfix_filters_bench", ROOT / "filter_plugins" / "postfix.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def extra_services(count: int) -> list[dict[str, Any]]:
    """Realistic additions: smtpd listeners with overrides, pipe transports with args, plain services."""
    services: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            services.append(
                {
                    "name": f"127.0.0.1:{20000 + i}",
                    "type": "inet",
                    "private": False,
                    "chroot": False,
                    "command": "smtpd",
                    "comment": f"listener {i}",
                    "options": {
                        "syslog_name": f"postfix/listener{i}",
                        "smtpd_milters": [],
                        "smtpd_recipient_restrictions": ["permit_mynetworks", "reject"],
                        "smtpd_banner": "$myhostname ESMTP listener",
                        "smtpd_tls_security_level": "none",
                    },
                }
            )
        elif kind == 1:
            services.append(
                {
                    "name": f"transport{i}",
                    "type": "unix",
                    "unpriv": False,
                    "chroot": False,
                    "command": "pipe",
                    "args": ["flags=FRX", "user=list", "argv=/usr/bin/deliver", "${nexthop}", "${user}"],
                }
            )
        else:
            services.append(
                {
                    "name": f"smtp{i}",
                    "type": "unix",
                    "chroot": True,
                    "maxproc": 20,
                    "command": "smtp",
                    "options": {"smtp_helo_timeout": "5s", "smtp_connect_timeout": 5},
                }
            )
    return services


def _time(func: Callable[[], Any], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


def measure(extra: int = 500, runs: int = 20) -> dict[str, list[float]]:
    """Seconds per call of each step over `runs` runs."""
    pf = load_filters()
    stock = pf.postfix_parse_master_cf(DEBIAN_MASTER_CF.read_text())
    services = stock + extra_services(extra)
    text = pf.postfix_master_cf(services)
    host_layer = [
        {"name": "smtp", "type": "inet", "maxproc": 100},
        {"name": "uucp", "type": "unix", "state": "absent"},
    ]
    return {
        "postfix_master_cf": _time(lambda: pf.postfix_master_cf(services, "postfix-out"), runs),
        "postfix_merge_services (3 layers)": _time(
            lambda: pf.postfix_merge_services([stock, extra_services(extra), host_layer], "postfix-out"), runs
        ),
        "postfix_parse_master_cf": _time(lambda: pf.postfix_parse_master_cf(text), runs),
        "merge + render": _time(
            lambda: pf.postfix_master_cf(
                pf.postfix_merge_services([stock, extra_services(extra), host_layer])
            ),
            runs,
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", type=int, default=500, help="extra services beside Debian's (default 500)")
    parser.add_argument("--runs", type=int, default=20, help="runs per step (default 20)")
    args = parser.parse_args(argv)
    results = measure(args.extra, args.runs)
    stock = len(load_filters().postfix_parse_master_cf(DEBIAN_MASTER_CF.read_text()))
    print(f"Debian master.cf ({stock} services) + {args.extra} extra services, {args.runs} runs")
    print(f"{'step':<36} {'mean ms':>9} {'min ms':>9} {'max ms':>9}")
    for step, times in results.items():
        print(
            f"{step:<36} {statistics.mean(times) * 1e3:9.2f} {min(times) * 1e3:9.2f} {max(times) * 1e3:9.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
