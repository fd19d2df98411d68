"""plugin_utils/mailman.py: runner counts (filters mailman_runners and mailman_started_runners) and
periodic jobs (mailman_periodic_jobs)."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mailstack.site.plugins.plugin_utils.mailman import (
    mailman_periodic_jobs,
    mailman_runners,
    mailman_started_runners,
)
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize("count", [1, 2, 4, 8, 16, 64, "4"])
def test_powers_of_two_are_accepted(count):
    assert mailman_runners(count) == {"out": int(count)}


@pytest.mark.parametrize("count", [0, 3, 5, 6, 12, -2, "three", "2.0", True, None])
def test_other_out_counts_are_refused_with_the_runner_named(count):
    with pytest.raises(AnsibleFilterError, match="runner 'out'"):
        mailman_runners(count)


@given(st.integers(min_value=-1000, max_value=1 << 20))
def test_power_of_two_property(count):
    if count > 0 and bin(count).count("1") == 1:
        assert mailman_runners(count)["out"] == count
    else:
        with pytest.raises(AnsibleFilterError):
            mailman_runners(count)


def test_other_runners_are_merged_and_checked():
    assert mailman_runners(2, {"in": 4, "pipeline": 1}) == {"out": 2, "in": 4, "pipeline": 1}
    with pytest.raises(AnsibleFilterError, match=r"runner 'in': instances must be a power of two.*got 3"):
        mailman_runners(2, {"in": 3})
    with pytest.raises(AnsibleFilterError, match="unknown runner 'inn'"):
        mailman_runners(1, {"inn": 2})
    with pytest.raises(AnsibleFilterError, match="mailman_core__out_runners"):
        mailman_runners(1, {"out": 2})


def test_started_runners_are_every_runner_but_bad_and_shunt_with_the_counts_set():
    started = mailman_started_runners(mailman_runners(2, {"in": 4}))
    assert started == {"archive": 1, "bounces": 1, "command": 1, "digest": 1, "in": 4, "lmtp": 1, "nntp": 1,
                       "out": 2, "pipeline": 1, "rest": 1, "retry": 1, "task": 1, "virgin": 1}
    assert list(started) == sorted(started)
    assert "bad" not in mailman_started_runners({"out": 1, "bad": 2})


@pytest.mark.parametrize(
    ("runners", "message"),
    [(["out"], "expects mailman_runners' mapping, got list"), ({"out": 1, "inn": 2}, "unknown runner 'inn'")],
)
def test_started_runners_errors(runners, message):
    with pytest.raises(AnsibleFilterError, match=message):
        mailman_started_runners(runners)


DEBIAN_JOBS = [
    {"name": "notify", "command": "notify", "on_calendar": "*-*-* 08:00:00"},
    {"name": "digests", "command": "digests  --periodic", "on_calendar": "*-*-*   12:00:00"},
]


def job(**fields):
    """A present job named d, with the given fields added or replaced (None: left out)."""
    entry = {"name": "d", "command": "digests", "on_calendar": "daily", **fields}
    return {key: value for key, value in entry.items() if value is not None}


def test_periodic_jobs_are_checked_and_normalised_in_order():
    jobs = mailman_periodic_jobs([*DEBIAN_JOBS, {"name": "old-job", "state": "absent"}])
    assert jobs == [
        {"name": "notify", "state": "present", "command": "notify", "on_calendar": "*-*-* 08:00:00"},
        {"name": "digests", "state": "present", "command": "digests --periodic",
         "on_calendar": "*-*-* 12:00:00"},
        {"name": "old-job", "state": "absent", "command": "", "on_calendar": ""},
    ]
    assert mailman_periodic_jobs([]) == []


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ({"name": "notify"}, r"mailman_core__periodic_jobs: must be a list of jobs, got dict"),
        (["notify"], r"\[0\]: a job is a mapping .*got str"),
        ([job(name="Digests")], r"\[0\]: name must be .*'Digests'"),
        ([job(name="a b")], r"name must be"),
        ([job(name=None)], r"\[0\]: name must be .*None"),
        ([job(when="x")], r"unknown key 'when'"),
        ([DEBIAN_JOBS[0], DEBIAN_JOBS[0]], r"job 'notify': named twice"),
        ([job(command=None)], r"job 'd': command must be .*None"),
        ([job(on_calendar=None)], r"job 'd': on_calendar must be .*None"),
        ([job(command="  ")], r"job 'd': command must be"),
        ([job(command="digests\nrm")], r"job 'd': command must be a one-line"),
        ([job(on_calendar="%H")], r"job 'd': on_calendar must be .*without '%'"),
        ([job(command="mailman digests")], r"job 'd': command is the mailman subcommand"),
        ([job(state="off")], r"job 'd': state must be"),
    ],
)
def test_periodic_job_errors_name_the_entry_and_field(jobs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        mailman_periodic_jobs(jobs)


def test_periodic_job_errors_name_the_variable_given():
    with pytest.raises(AnsibleFilterError, match=r"^mailman_periodic_jobs: my_jobs: "):
        mailman_periodic_jobs("digests", "my_jobs")
