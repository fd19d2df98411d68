"""Property tests: random valid service lists survive render -> parse unchanged."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, given, settings
from support.postfix_cases import expected_canonical, services


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(services)
def test_render_parse_roundtrip(pf: ModuleType, data: list[dict[str, Any]]) -> None:
    text = pf.postfix_master_cf(data, "postfix-out")
    assert pf.postfix_parse_master_cf(text, keep_comments=True) == [expected_canonical(s) for s in data]
    # Rendering the parsed data again gives the same text: the rendering is a fixed point.
    assert pf.postfix_master_cf(pf.postfix_parse_master_cf(text, keep_comments=True), "postfix-out") == text


@settings(max_examples=100, deadline=None)
@given(services, services)
def test_merge_of_two_layers_is_last_wins(
    pf: ModuleType, first: list[dict[str, Any]], second: list[dict[str, Any]]
) -> None:
    merged = pf.postfix_merge_services([first, second])
    keys = [(s["name"], s["type"]) for s in merged]
    expected_keys = list(dict.fromkeys([(s["name"], s["type"]) for s in first + second]))
    assert keys == expected_keys
    by_key = {(s["name"], s["type"]): s for s in merged}
    for entry in second:
        got = by_key[(entry["name"], entry["type"])]
        want = expected_canonical(entry)
        for field in ("private", "unpriv", "chroot", "wakeup", "maxproc", "command", "args", "comment"):
            if field in entry:
                assert got[field] == want[field]


@settings(max_examples=100, deadline=None)
@given(services)
def test_merge_is_idempotent_and_absent_removes_everything(
    pf: ModuleType, data: list[dict[str, Any]]
) -> None:
    once = pf.postfix_merge_services([data])
    assert pf.postfix_merge_services([once, once]) == once
    absent = [{"name": s["name"], "type": s["type"], "state": "absent"} for s in data]
    assert pf.postfix_merge_services([data, absent]) == []
