"""The end-to-end suite: the running lab, driven from its `internet` host as users, senders and
attackers would, observed from inside only to count copies and queues (`make e2e`).

Every check reports its figure through the `figure` fixture; the figures are printed together at
the end of the run ("figures" section), whether the check passed or failed. A check that passes
without reporting a figure is an error of the suite, and a figure carries what was measured: a
text without a number is refused.
"""

import re

import pytest

_FIGURES: list[tuple[str, str]] = []  # (node id, figure)


def _name(nodeid: str) -> str:
    return nodeid.split("::", 1)[-1]


@pytest.fixture
def figure(request):
    """figure(text): record one figure of this check (also printed when the check runs)."""

    def record(text: str) -> None:
        if not re.search(r"\d", text):
            raise ValueError(f"a figure carries the measured number, got {text!r}")
        _FIGURES.append((request.node.nodeid, text))
        print(text)

    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    passed = report.when == "call" and report.passed and not hasattr(report, "wasxfail")
    if passed and not any(nodeid == item.nodeid for nodeid, _ in _FIGURES):
        report.outcome = "failed"
        report.longrepr = f"{_name(item.nodeid)} passed without reporting its figure (the figure fixture)"


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("figures")
        for nodeid, text in _FIGURES:
            terminalreporter.write_line(f"{_name(nodeid)}: {text}")
