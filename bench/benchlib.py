"""Helpers shared by the benchmarks of bench/: parsing what they read, tables, docs/benchmarks/.

Unit tests: tests/unit/test_benchlib.py.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks"


@dataclass
class Cell:
    """What one run of bench/smtp_acceptance/run-cell.sh printed."""

    cpu_before: dict[str, int] = field(default_factory=dict)  # unit -> usage_usec
    cpu_after: dict[str, int] = field(default_factory=dict)
    start: float = 0.0
    accepted: float = 0.0
    drained: float = 0.0
    rc: int | None = None
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def accept_seconds(self) -> float:
        return self.accepted - self.start

    @property
    def relay_seconds(self) -> float:
        return self.drained - self.start

    def cpu_usec(self, units: Iterable[str] | None = None) -> int:
        """CPU time used by the given units (default: all) between the two readings."""
        names = list(self.cpu_before) if units is None else list(units)
        return sum(self.cpu_after[u] - self.cpu_before[u] for u in names)


def parse_cell(text: str) -> Cell:
    """Parse run-cell.sh's output; ValueError names the line it cannot read."""
    cell = Cell()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, _, rest = line.partition(" ")
        words = rest.split()
        try:
            if key == "cpu":
                when, unit, usage = words
                target = {"before": cell.cpu_before, "after": cell.cpu_after}[when]
                target[unit] = int(usage)
            elif key == "times":
                cell.start, cell.accepted, cell.drained = (float(w) for w in words)
            elif key == "rc":
                (value,) = words
                cell.rc = int(value)
            elif key in ("load_before", "load_after"):
                one, five, fifteen = (float(w) for w in words)
                setattr(cell, key, (one, five, fifteen))
            elif key == "stderr":
                cell.errors.append(rest)
            else:
                raise ValueError("unknown key")
        except (ValueError, KeyError) as exc:
            raise ValueError(f"run-cell output line {number}: cannot read {line!r} ({exc})") from None
    if cell.rc is None or not cell.start:
        raise ValueError("run-cell output has no 'rc' or 'times' line (did the script stop early?)")
    if set(cell.cpu_before) != set(cell.cpu_after):
        raise ValueError(
            f"run-cell output: CPU read before for {sorted(cell.cpu_before)} "
            f"but after for {sorted(cell.cpu_after)}"
        )
    return cell


_USAGE = re.compile(r"^usage_usec (\d+)$", re.MULTILINE)


def parse_cpu_stat(text: str) -> int:
    """usage_usec of a cgroup v2 cpu.stat."""
    match = _USAGE.search(text)
    if match is None:
        raise ValueError("cpu.stat has no usage_usec line")
    return int(match.group(1))


def parse_loadavg(text: str) -> tuple[float, float, float]:
    """The three load averages of /proc/loadavg."""
    words = text.split()
    if len(words) < 3:
        raise ValueError(f"not a /proc/loadavg line: {text!r}")
    return float(words[0]), float(words[1]), float(words[2])


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(value: float, base: float) -> str:
    """value/base as '0.42x', or '-' when either is missing."""
    if not base or math.isnan(value) or math.isnan(base):
        return "-"
    return f"{value / base:.2f}x"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; numbers right-aligned by the caller's formatting."""
    align = "|".join("---:" if i else "---" for i in range(len(header)))
    lines = ["| " + " | ".join(header) + " |", f"|{align}|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def text_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The same table for a terminal: columns padded, the first left-aligned, the others right."""
    data = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in data) for i in range(len(header))]
    out = []
    for row in data:
        cells = zip(row, widths, strict=True)
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells)))
    return "\n".join(out) + "\n"


def replace_section(document: str, name: str, body: str) -> str:
    """Replace (or append) the block between <!-- BEGIN name --> and <!-- END name -->."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    start = document.find(begin)
    if start == -1:
        return document.rstrip() + ("\n\n" if document.strip() else "") + block + "\n"
    stop = document.find(end, start)
    if stop == -1:
        raise ValueError(f"{begin} has no matching {end}")
    return document[:start] + block + document[stop + len(end) :]


def write_section(name: str, body: str, readme: Path | None = None) -> Path:
    """Write a benchmark's section into docs/benchmarks/README.md, keeping the other sections."""
    path = readme or DOCS / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(replace_section(old, name, body))
    os.replace(tmp, path)
    return path


def command_line(script: str, args: Sequence[str]) -> str:
    """How a benchmark was run, for its section: `bench/<script> <args>`, quoted as a shell would."""
    return shlex.join([f"bench/{script}", *args])


def machine() -> str:
    """One line about the machine the benchmark ran on: CPUs, model, load average."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = parse_loadavg(Path("/proc/loadavg").read_text())
    return f"{os.cpu_count()} CPUs ({model}), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def bar_chart(
    png: Path,
    title: str,
    labels: Sequence[str],
    segments: Sequence[tuple[str, Sequence[float]]],
    xlabel: str,
    *,
    log: bool = False,
) -> bool:
    """A horizontal bar per label, made of the named segments laid end to end (one value per label
    each), on a log scale when log (one segment only); written to png. False when matplotlib is
    not installed (no chart)."""
    if log and len(segments) != 1:
        raise ValueError("a log scale takes one segment")
    for name, values in segments:
        if len(values) != len(labels):
            raise ValueError(f"segment {name!r}: {len(values)} values for {len(labels)} labels")
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(11, 2.0 + 0.42 * len(labels)))
    ys = list(range(len(labels)))[::-1]
    left = [0.0] * len(labels)
    for name, values in segments:
        ax.barh(ys, values, left=left, label=name, height=0.7)
        left = [a + b for a, b in zip(left, values, strict=True)]
    for y, total in zip(ys, left, strict=True):
        ax.text(total, y, f" {total:,.1f}", va="center", fontsize=8)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if log:
        ax.set_xscale("log")
    ax.margins(x=0.08)
    if len(segments) > 1:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=2, frameon=False)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return True
