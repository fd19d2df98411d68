"""filter_plugins/mailman.py: runner counts and layered list data."""

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "filter_plugins"))

from mailman import FilterModule, mailman_merge_by_name, mailman_runners, mailman_started_runners


def test_filters_are_exported():
    assert set(FilterModule().filters()) == {
        "mailman_runners", "mailman_started_runners", "mailman_merge_by_name"}


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


def test_merge_by_name_later_layers_win_per_key():
    base = [{"name": "Dev@Lists.example.test", "owners": ["a@example.test"], "settings": {"x": 1}}]
    group = [
        {"name": "dev@lists.example.test", "settings": {"y": 2}},
        {"name": "ops@lists.example.test", "state": "absent"},
    ]
    merged = mailman_merge_by_name([base, group, None], "lists")
    assert merged == [
        {"name": "dev@lists.example.test", "owners": ["a@example.test"], "settings": {"y": 2}},
        {"name": "ops@lists.example.test", "state": "absent"},
    ]


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([[{"owners": []}]], "layer 0: every entry needs a name"),
        ([[], "x"], "layer 1 must be a list"),
        ([[{"name": "nodomain"}]], "'nodomain' must be list@domain"),
        ({"a": 1}, "layers must be a list"),
    ],
)
def test_merge_by_name_errors(layers, message):
    with pytest.raises(AnsibleFilterError, match=message):
        mailman_merge_by_name(layers, "lists")


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
