"""The one merge engine (plugin_utils/layers.py) and its filter merge_layers: the rules every layered
variable of every role follows, tested once here (key, order, fields, state: absent, duplicates, case),
and through each caller for the fields only it has (Postfix options and items, firewall rules)."""

from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mailstack.site.plugins.plugin_utils.errors import Where
from ansible_collections.mailstack.site.plugins.plugin_utils.layers import (
    by_name,
    merge_layers,
    merge_named_layers,
    present,
)
from hypothesis import given
from hypothesis import strategies as st

LAYERS = ["x__items", "x__group_items", "x__host_items"]


def raises(message: str):
    return pytest.raises(AnsibleFilterError, match=f"^{re.escape(message)}")


def test_later_layers_win_field_by_field_in_order_of_first_appearance():
    merged = merge_named_layers(
        [
            [{"name": "a", "x": 1, "y": 1}, {"name": "b", "x": 1}],
            None,
            [{"name": "c"}, {"name": "a", "y": 2}],
        ],
        LAYERS,
    )
    assert merged == [
        {"name": "a", "x": 1, "y": 2, "state": "present"},
        {"name": "b", "x": 1, "state": "present"},
        {"name": "c", "state": "present"},
    ]


def test_absent_forgets_earlier_layers_keeps_its_slot_and_a_later_entry_starts_afresh():
    layers = [
        [{"name": "a", "password": "p", "owner": "o"}, {"name": "b"}],
        [{"name": "a", "state": "absent"}],
        [],
    ]
    # The module sees the absent entry as written (a role to drop), without the earlier fields.
    assert merge_named_layers(layers, LAYERS) == [
        {"name": "a", "state": "absent"},
        {"name": "b", "state": "present"},
    ]
    layers[2] = [{"name": "a", "owner": "new"}]
    assert merge_named_layers(layers, LAYERS) == [
        {"name": "a", "owner": "new", "state": "present"},
        {"name": "b", "state": "present"},
    ]


def test_present_drops_the_absent_entries():
    merged = merge_layers([("l", [{"name": "a"}, {"name": "b", "state": "absent"}])])
    assert present(merged) == [{"name": "a"}]
    assert [(m.key, m.state, m.source) for m in merged] == [("a", "present", "l[0]"), ("b", "absent", "l[1]")]


def test_case_folding_on_request_and_the_folded_name_returned():
    layers = [[{"name": "Dev@Lists.Example.org", "a": 1}], [{"name": "dev@lists.example.org", "b": 2}], []]
    assert merge_named_layers(layers, LAYERS, casefold=True) == [
        {"name": "dev@lists.example.org", "a": 1, "b": 2, "state": "present"}
    ]
    # Without casefold the two are different entries.
    assert len(merge_named_layers(layers, LAYERS)) == 2


@pytest.mark.parametrize(
    ("layers", "kwargs", "message"),
    [
        ([[], [], {"name": "x"}], {}, "merge_layers: x__host_items: must be a list, got dict"),
        (
            [[{"name": "a"}], [{"password": "p"}], []],
            {},
            "merge_layers: x__group_items[0]: every entry needs a name",
        ),
        ([["a"], [], []], {}, "merge_layers: x__items[0]: an entry must be a mapping, got 'a'"),
        (
            [[{"name": "a", "state": "gone"}], [], []],
            {},
            "merge_layers: x__items[0]: state must be 'present' or 'absent', got 'gone'",
        ),
        (
            [[], [{"name": "a"}, {"name": "b"}, {"name": "a", "x": 1}], []],
            {},
            "merge_layers: x__group_items[2]: names the same entry as x__group_items[0]: one entry per name",
        ),
        (
            [[{"name": "A"}, {"name": "a"}], [], []],
            {"casefold": True},
            "merge_layers: x__items[1]: names the same entry as x__items[0]",
        ),
        (
            [[{"name": "nodomain"}], [], []],
            {"name_format": "address"},
            "merge_layers: x__items[0]: name must be an address local@domain, got 'nodomain'",
        ),
        (
            [[{"name": "-bad-.org"}], [], []],
            {"name_format": "domain"},
            "merge_layers: x__items[0]: name must be a domain name",
        ),
        (
            [[], [], []],
            {"name_format": "url"},
            "merge_layers: name_format must be null, 'domain' or 'address'",
        ),
    ],
)
def test_errors_name_the_variable_and_the_index(layers, kwargs, message):
    with raises(message):
        merge_named_layers(layers, LAYERS, **kwargs)


def test_layer_names_must_match_the_layers():
    with raises("merge_layers: give one variable name per layer (2), got 3"):
        merge_named_layers([[], []], LAYERS)
    with raises("merge_layers: input must be a list of layers (lists or null), got dict"):
        merge_named_layers({"a": 1}, LAYERS)


def test_a_caller_context_and_field_rule():
    def add_lists(current, entry, here):
        return {**current, **entry, "items": [*current.get("items", []), *entry.get("items", [])]}

    merged = merge_layers(
        [("a", [{"name": "x", "items": [1]}]), ("b", [{"name": "x", "items": [2]}])],
        where=Where("caller", "host 'h'"),
        merge=add_lists,
    )
    assert present(merged) == [{"name": "x", "items": [1, 2]}]
    assert merged[0].contributions == [
        ("a[0]", {"name": "x", "items": [1]}),
        ("b[0]", {"name": "x", "items": [2]}),
    ]
    with raises("caller: host 'h': a[0]: every entry needs a name"):
        merge_layers([("a", [{}])], where=Where("caller", "host 'h'"), key=by_name())


names = st.sampled_from(["a", "b", "c", "d"])
entries = st.fixed_dictionaries(
    {"name": names}, optional={"v": st.integers(0, 3), "state": st.sampled_from(["present", "absent"])}
)
layer = st.lists(entries, max_size=4, unique_by=lambda e: e["name"])


@given(st.lists(layer, max_size=4))
def test_the_rules_hold_for_any_layers(layers):
    merged = merge_layers([(f"l{i}", items) for i, items in enumerate(layers)])
    # Order of first appearance.
    first = list(dict.fromkeys(e["name"] for items in layers for e in items))
    assert [m.key for m in merged] == first
    for m in merged:
        written = [e for items in layers for e in items if e["name"] == m.key]
        # The state is the last layer's; after the last absent, only later entries count.
        assert m.state == written[-1].get("state", "present")
        last_absent = max((i for i, e in enumerate(written) if e.get("state") == "absent"), default=-1)
        if m.state == "present":
            since = written[last_absent + 1 :]
            values = [e["v"] for e in since if "v" in e]
            assert m.fields.get("v") == (values[-1] if values else None)
