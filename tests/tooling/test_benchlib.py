"""bench/benchlib.py (what the benchmarks parse and write) and the data of bench/smtp_acceptance.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "bench"))

from benchlib import (  # noqa: E402
    bar_chart,
    command_line,
    markdown_table,
    parse_cell,
    parse_cpu_stat,
    parse_loadavg,
    ratio,
    replace_section,
    text_table,
    write_section,
)

# What bench/smtp_acceptance/run-cell.sh printed for one run (from a real run, smtp-source errors added).
CELL = """\
load_before 7.43 3.89 3.41
cpu before postfix@postfix-out.service 5468820
cpu before systemd-journald.service 1823492
cpu after postfix@postfix-out.service 11875946
cpu after systemd-journald.service 1823659
times 1796011311.334689 1796011318.556602 1796011319.584333
rc 0
load_after 9.31 4.42 3.58
"""


def test_parse_cell_reads_every_fact() -> None:
    cell = parse_cell(CELL)
    assert cell.rc == 0
    assert cell.errors == []
    assert cell.load_before == (7.43, 3.89, 3.41)
    assert cell.load_after == (9.31, 4.42, 3.58)
    assert cell.accept_seconds == pytest.approx(7.221913)
    assert cell.relay_seconds == pytest.approx(8.249644)
    assert cell.cpu_usec() == (11875946 - 5468820) + (1823659 - 1823492)
    assert cell.cpu_usec(["systemd-journald.service"]) == 167


def test_parse_cell_keeps_smtp_source_errors() -> None:
    text = CELL.replace("rc 0", "rc 1") + (
        "stderr smtp-source: fatal: recipient rejected: 554 5.7.1 Spam message rejected\n"
        "stderr   with two  spaces\n"
    )
    cell = parse_cell(text)
    assert cell.rc == 1
    assert cell.errors == [
        "smtp-source: fatal: recipient rejected: 554 5.7.1 Spam message rejected",
        "  with two  spaces",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CELL + "cpu sometime x.service 5\n", "line 9: cannot read 'cpu sometime x.service 5'"),
        (CELL + "bogus 1\n", "line 9: cannot read 'bogus 1' (unknown key)"),
        (CELL.replace("rc 0", "rc zero"), "line 7: cannot read 'rc zero'"),
        (CELL.replace("times", "rc 0\n#"), "cannot read '# 1796011311.334689"),
        (
            "\n".join(line for line in CELL.splitlines() if not line.startswith("times")),
            "no 'rc' or 'times' line",
        ),
        ("\n".join(line for line in CELL.splitlines() if "after systemd" not in line), "CPU read before for"),
    ],
)
def test_parse_cell_refuses_what_it_cannot_read(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=None) as excinfo:
        parse_cell(text)
    assert message in str(excinfo.value)


def test_parse_cpu_stat_and_loadavg() -> None:
    assert parse_cpu_stat("usage_usec 52700\nuser_usec 20278\nsystem_usec 32422\n") == 52700
    with pytest.raises(ValueError, match="no usage_usec"):
        parse_cpu_stat("user_usec 1\n")
    assert parse_loadavg("0.34 2.16 3.20 3/113 9083\n") == (0.34, 2.16, 3.20)
    with pytest.raises(ValueError, match="not a /proc/loadavg line"):
        parse_loadavg("0.34\n")


def test_ratio() -> None:
    assert ratio(50, 200) == "0.25x"
    assert ratio(50, 0) == "-"
    assert ratio(float("nan"), 3) == "-"


def test_tables() -> None:
    assert markdown_table(["a", "b"], [["x", "1"]]) == "| a | b |\n|---|---:|\n| x | 1 |\n"
    assert text_table(["name", "n"], [["long name", "12"]]) == "name        n\nlong name  12\n"


def test_replace_section_keeps_the_rest() -> None:
    doc = "# Benchmarks\n\nintro\n"
    once = replace_section(doc, "a", "first")
    assert once == "# Benchmarks\n\nintro\n\n<!-- BEGIN a -->\nfirst\n<!-- END a -->\n"
    both = replace_section(once, "b", "other\n")
    again = replace_section(both, "a", "second")
    assert again == both.replace("first", "second")
    with pytest.raises(ValueError, match="no matching"):
        replace_section("<!-- BEGIN a -->\nx\n", "a", "y")


def test_write_section(tmp_path: Path) -> None:
    readme = tmp_path / "docs" / "README.md"
    write_section("filters", "table 1", readme)
    write_section("smtp", "table 2", readme)
    write_section("filters", "table 3", readme)
    text = readme.read_text()
    assert text.startswith("# Benchmarks\n")
    assert "table 1" not in text
    assert text.index("table 3") < text.index("table 2")


def test_every_benchmarked_tuning_is_in_the_profile() -> None:
    """bench/smtp_acceptance.py reverts tunings of loopback_unchecked: each must still be one."""
    import smtp_acceptance  # noqa: PLC0415

    profile = yaml.safe_load(smtp_acceptance.PROFILE.read_text())["postfix__profile_loopback_unchecked"]
    names = {entry["name"] for entry in profile["maincf"]}
    for param, _stock in smtp_acceptance.TUNINGS:
        assert param in names, f"{param} is no longer in the loopback_unchecked profile"
    instances = smtp_acceptance.instances()
    ports = [i["port"] for i in instances if "port" in i]
    assert len(ports) == len(set(ports))
    assert {i["name"] for i in instances} >= {"-", "postfix-out", "postfix-untuned", "postfix-stock"}
    relay = yaml.safe_load(smtp_acceptance.RELAY_PROFILE.read_text())["postfix__profile_relay"]
    relay_names = {entry["name"] for entry in relay["maincf"]}
    for param, _stock in smtp_acceptance.RELAY_TUNINGS:
        assert param in relay_names, f"{param} is no longer in the relay profile"
    assert {i["name"] for i in instances} >= set(smtp_acceptance.relay_paths())
    assert set(smtp_acceptance.relay_paths()) <= set(smtp_acceptance.paths())


# Log lines as the lab's hosts write them: journald (short-iso-precise, the offset with or without a
# colon) on the MX, and postfix-out's own maillog_file (no year, whole or fractional seconds) on the
# back-end; another message's lines in between.
JOURNAL = """\
2026-11-30T15:00:01.250000+0000 mx1 postfix/cleanup[11]: 3F2A1B0C4D: message-id=<tok@remote-a.test>
2026-11-30T15:00:01.300000+00:00 mx1 postfix/cleanup[11]: 9E8D7C6B5A: message-id=<other@remote-a.test>
2026-11-30T15:00:01.750000+00:00 mx1 postfix/smtp[12]: 3F2A1B0C4D: to=<crowd@lists.mailstack.test>, \
relay=list1.lab.mailstack.test[172.30.0.21]:25, delay=0.5, status=sent (250 2.0.0 Ok: queued as 77AA)
2026-11-30T15:00:01.800000+00:00 mx1 postfix/smtp[12]: 9E8D7C6B5A: to=<x@lists.mailstack.test>, status=sent
2026-11-30T15:00:02.000000+00:00 mx1 postfix/smtp[12]: 3F2A1B0C4D: to=<y@lists.mailstack.test>, \
status=deferred (connect refused)
not a log line
"""
MAILLOG = """\
Nov 30 15:00:03 list1 postfix-out/cleanup[21]: 4MkQ1b2pPzz9vXy: message-id=<tok@remote-a.test>
Nov 30 15:00:04 list1 postfix-out/cleanup[21]: 4MkQ1b2pQaa8wZz: message-id=<tok@remote-a.test>
Nov 30 15:00:05.250000 list1 postfix-out/smtp[22]: 4MkQ1b2pQaa8wZz: to=<m@remote-b.test>, status=sent
"""


def test_fanout_reads_a_messages_times_from_journald_and_maillog_lines() -> None:
    from fanout import parse_time, postfix_events  # noqa: PLC0415

    base = parse_time("2026-11-30T15:00:00.000000+00:00", 2026)
    assert parse_time("Nov 30 15:00:00.000000", 2026) == base
    mx = postfix_events(JOURNAL.splitlines(), "tok@remote-a.test", 2026)
    # Only this message's lines, and only its successful deliveries.
    assert [t - base for t in mx["accepted"]] == [1.25]
    assert [t - base for t in mx["sent"]] == [1.75]
    out = postfix_events(MAILLOG.splitlines(), "tok@remote-a.test", 2026)
    assert [t - base for t in out["accepted"]] == [3.0, 4.0]
    assert [t - base for t in out["sent"]] == [5.25]
    assert postfix_events(JOURNAL.splitlines(), "nobody@remote-a.test", 2026) == {"accepted": [], "sent": []}


def test_fanout_reads_a_containers_cpu_from_cgroup_v1_and_v2() -> None:
    from fanout import container_cpu_ns  # noqa: PLC0415

    assert container_cpu_ns("/sys/fs/cgroup/cpuacct/docker/x/cpuacct.usage", "1500000000\n") == 1_500_000_000
    stat = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
    assert container_cpu_ns("/sys/fs/cgroup/docker/x/cpu.stat", stat) == 2_500_000_000


def test_fanout_drains_the_relays_after_the_first_n() -> None:
    from fanout import extra_inventory  # noqa: PLC0415

    relays = ["relay1", "relay2", "relay3"]
    one = extra_inventory(relays, 1)["all"]["children"]["relays"]["hosts"]
    assert one == {"relay2": {"mailstack__draining": True}, "relay3": {"mailstack__draining": True}}
    assert extra_inventory(relays, 3)["all"]["children"]["relays"]["hosts"] == {}
    giant = extra_inventory(relays, 3, 50000)["all"]["children"]
    assert giant["relays"]["hosts"] == {}
    (listed,) = giant["mailman_core"]["vars"]["mailman_core__group_lists"]
    assert listed["name"] == "giant@lists.mailstack.test"
    assert listed["members"] == (
        "{{ 'giant' | mailstack.site.numbered_addresses(50000, mailstack__lab_remote_domains[:2]) }}"
    )


def test_fanout_changes_one_setting_at_a_time_around_the_labs_own() -> None:
    from fanout import one_at_a_time, split  # noqa: PLC0415

    assert split("") == []
    assert split("1, 2,") == ["1", "2"]
    options = {"mailman_core__runner_sleep_time": ["0.1s"], "mailman_core__max_recipients": ["100", "50"]}
    got = one_at_a_time(options, [1, 3, 2, 1], 3)  # a repeated count is measured once
    assert got == [
        ("lab settings (3 relays)", {}, 3),  # first; a count equal to the lab's is not repeated
        ("1 relay", {}, 1),
        ("2 relays", {}, 2),
        ("runner_sleep_time 0.1s", {"mailman_core__runner_sleep_time": "0.1s"}, 3),
        ("max_recipients 100", {"mailman_core__max_recipients": "100"}, 3),
        ("max_recipients 50", {"mailman_core__max_recipients": "50"}, 3),
    ]
    assert one_at_a_time({"mailman_core__max_recipients": []}, [], 1) == [("lab settings (1 relay)", {}, 1)]


def test_bar_chart_draws_the_segments_end_to_end(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "chart.png"
    segments = [("first", [1.0, 2.0]), ("second", [0.5, 0.0])]
    assert bar_chart(png, "title", ["a", "b"], segments, "seconds")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="segment 'first': 1 values for 2 labels"):
        bar_chart(png, "title", ["a", "b"], [("first", [1.0])], "seconds")


def test_command_line_names_the_script_and_quotes_its_arguments() -> None:
    assert command_line("fanout.py", []) == "bench/fanout.py"
    got = command_line("fanout.py", ["--relays", "1,2", "--lists", "a b"])
    assert got == "bench/fanout.py --relays 1,2 --lists 'a b'"


def test_smtp_sections_say_how_they_were_written() -> None:
    import argparse  # noqa: PLC0415

    import smtp_acceptance  # noqa: PLC0415

    loads = ((0.1, 0.2, 0.3), (1.0, 2.0, 3.0), (4.0, 5.0, 6.0))
    kept = argparse.Namespace(kept_connection=True, reuse=True)
    head = smtp_acceptance.section_head(": the relay", kept, "bench/x --relay ", 12.3, 0.0, loads=loads)
    assert head[0] == "## SMTP acceptance (issue 15, part 1): the relay, connections kept (smtp-source -d)"
    assert "`bench/x --relay`" in head[2]
    assert "12 s in all (a kept container, converged by an earlier run)." in head[2]
    assert "0.10 0.20 0.30 at the start, 1.00 2.00 3.00 before the first measured run," in head[4]
    assert "4.00 5.00 6.00 after the last" in head[4]
    fresh = argparse.Namespace(kept_connection=False, reuse=False)
    head = smtp_acceptance.section_head("", fresh, "bench/x", 400.0, 305.0, loads=loads)
    assert head[0] == "## SMTP acceptance (issue 15, part 1)"
    assert head[2].endswith("400 s in all (305 s to create and converge the container).")


def test_an_ablation_table_compares_each_instance_with_the_first() -> None:
    import smtp_acceptance  # noqa: PLC0415

    class Fake:
        def __init__(self, accept: float, relay: float, cpu: float, ok: bool = True) -> None:
            self.ok, self._a, self._r, self._c = ok, accept, relay, cpu

        def accept_rate(self) -> float:
            return self._a

        def relay_rate(self) -> float:
            return self._r

        def cpu_ms(self) -> float:
            return self._c

    cell = smtp_acceptance.Shape(4096, 5, 1, False)
    results = {(cell, "base"): Fake(400, 380, 3.0), (cell, "no-x"): Fake(200, 190, 3.5),
               (cell, "broken"): Fake(0, 0, 0, ok=False)}
    reverted = {"base": "none", "no-x": "x = default", "broken": "y = default"}
    names = ["base", "no-x", "broken"]
    plain = smtp_acceptance.ablation_rows(results, [cell], names, reverted)
    assert plain[1] == [cell.label, "no-x", "x = default", "200", "0.50x", "3.50", "+0.50"]
    assert plain[2] == [cell.label, "broken", "y = default", "failed", "", "", ""]
    relayed = smtp_acceptance.ablation_rows(results, [cell], names, reverted, relayed=True)
    assert relayed[1] == [cell.label, "no-x", "x = default", "200", "190", "0.50x", "3.50", "+0.50"]
    assert len(relayed[2]) == len(smtp_acceptance.RELAY_HEADER)
    assert len(plain[0]) == len(smtp_acceptance.ABLATION_HEADER)
    tunings = [("in_flow_delay", None)]
    labels = smtp_acceptance.reverted_labels("postfix-out", "postfix-untuned", "postfix", tunings)
    assert labels == {"postfix-out": "none", "postfix-untuned": "all of them",
                      "postfix-no-in-flow-delay": "in_flow_delay = default"}


def test_filters_times_a_playbook_and_refuses_a_failed_one(tmp_path: Path) -> None:
    """bench/filters.py's one ansible-playbook runner, behind both of its Ansible rows."""
    import subprocess  # noqa: PLC0415

    from filters import per_task_seconds, playbook_seconds  # noqa: PLC0415

    def play(task: dict) -> list[dict]:
        one = {"name": "One task", "hosts": "localhost", "connection": "local", "gather_facts": False}
        return [{**one, "tasks": [{"name": "The task", **task}]}]

    env = {"ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    playbook_seconds(play({"ansible.builtin.debug": {"msg": "written"}}), "localhost,", str(tmp_path), env)
    assert "written" in (tmp_path / "play.yml").read_text()
    assert len(list(tmp_path.glob("home-*"))) == 1  # its own ANSIBLE_HOME
    with pytest.raises(subprocess.CalledProcessError):
        playbook_seconds(play({"ansible.builtin.fail": {"msg": "no"}}), "localhost,", str(tmp_path), env)

    # per_task_seconds runs play(base + tasks), then play(base).
    counts: list[int] = []

    def counted(count: int) -> list[dict]:
        counts.append(count)
        return play({"ansible.builtin.debug": {"msg": str(count)}})

    per_task_seconds(counted, "localhost,", str(tmp_path), tasks=4, base=1, env=env)
    assert counts == [5, 1]


LIB = "/usr/lib/python3/dist-packages"
RUN = f"run ({LIB}/mailman/core/runner.py:137)"
ONE = f"_one_iteration ({LIB}/mailman/core/runner.py:178)"
PY_SPY_RAW = "\n".join(
    [
        f"{RUN};_snooze ({LIB}/mailman/core/runner.py:303) 50",
        f"{RUN};{ONE};execute ({LIB}/sqlalchemy/orm/session.py:1700);"
        f"execute ({LIB}/psycopg2/extras.py:146) 30",
        f"{RUN};{ONE};_dispose ({LIB}/mailman/runners/outgoing.py:90);"
        "sendmail (/usr/lib/python3.11/smtplib.py:880) 15",
        f"{RUN};_one_iteration ({LIB}/mailman/core/runner.py:179);loads (<frozen pickle>:1) 5",
        "not a stack line",
    ]
)


def test_profile_counts_working_samples_through_each_named_function() -> None:
    from mailman_profile import frame_name, parse_raw  # noqa: PLC0415

    assert frame_name("_dispose (/usr/lib/python3/dist-packages/mailman/runners/outgoing.py:90)") == (
        "runners/outgoing.py:_dispose"
    )
    total, sleeping, through = parse_raw(PY_SPY_RAW)
    assert (total, sleeping) == (100, 50)
    # Inclusive: every working stack through a function counts once, however many of its lines.
    # The runner's own loop is on every stack: not listed.
    assert not any(name.startswith("core/runner.py:") for name in through)
    assert through["runners/outgoing.py:_dispose"] == 15
    assert through["orm/session.py:execute"] == 30
    assert through["python3.11/smtplib.py:sendmail"] == 15
    assert "core/runner.py:_snooze" not in through
    assert not any("pickle" in name for name in through)
