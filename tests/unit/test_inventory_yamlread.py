"""The bounded YAML reader builds what PyYAML's safe loader builds (the loader Ansible uses),
and knows the line of every key."""

from __future__ import annotations

import datetime
import string
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.errors import InventoryError
from fleet.inventory.limits import Limits
from fleet.inventory.problems import Problems
from fleet.inventory.yamlread import YamlDoc, read_yaml


def read(text: str, limits: Limits | None = None) -> tuple[YamlDoc, Problems]:
    problems = Problems()
    return read_yaml("t.yml", text, limits or Limits(), problems), problems


def reference(text: str) -> Any:
    """PyYAML's answer, timestamps as the ISO text ansible-inventory prints."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime.date):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return plain(yaml.safe_load(text))


_scalar_text = st.text(
    alphabet=string.ascii_letters + string.digits + " -_.:~#<=!&*@'\"yYnN", max_size=12
)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _scalar_text,
    st.sampled_from(["yes", "No", "on", "OFF", "~", "null", "0777", "0x1F", "1_000", "1:20", ".inf", "-.5",
                     "2024-02-29", "2001-12-14t21:59:43.10-05:00", "1e3", "+12", "<<", "=", ""]),
)  # fmt: skip
_data = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(_scalar_text, st.integers(), st.booleans()), children, max_size=4
        ),
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(_data, st.sampled_from([None, True, False]))
def test_same_data_as_pyyaml(data: Any, flow: bool | None) -> None:
    text = yaml.safe_dump({"root": data}, default_flow_style=flow, allow_unicode=True)
    doc, problems = read(text)
    assert not problems
    assert doc.data == reference(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(_scalar_text, max_size=6))
def test_plain_scalars_resolve_as_pyyaml_resolves_them(words: list[str]) -> None:
    text = "".join(
        f"- {w}\n" for w in words if w.strip() and w.strip()[0] not in "-?:,[]{}#&*!|>'\"%@`"
    )
    try:
        expected = reference(text)
    except yaml.YAMLError:
        return
    doc, _ = read(text)
    assert doc.data == expected


@pytest.mark.parametrize(
    "text",
    [
        "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n",
        "a: &a {k: 1, j: 1}\nb: &b {j: 1, m: 2}\nc:\n  <<: [*a, *b]\n  m: 3\n",
        "a: &a {kk: 1, jj: 1}\nb: &b {jj: 2, mm: 2}\nc:\n  <<: [*a, *b]\n  jj: 3\n",
        "a: &a {kk: 1, j: 1}\nc: {<<: *a, <<: {kk: 1, z: 1}, j: 2}\n",
        "s: !!set {a, b}\nt: !!str 12\nn: !!int '7'\nf: !!float '1'\n",
        "? a\n: b\nlist: &l [1, 2]\nref: *l\n",
        "",
        "# a comment only\n",
        "top:\n  - {a: 1}\n  - - nested\n    - [x, y]\n",
        "d: 2001-12-14 21:59:43\n",
    ],
)
def test_documents_with_anchors_merges_and_tags(text: str) -> None:
    doc, problems = read(text)
    assert not problems
    expected = reference(text)
    if isinstance(expected, dict) and isinstance(expected.get("s"), set):
        expected["s"] = sorted(expected["s"])
        doc.data["s"] = sorted(doc.data["s"])
    assert doc.data == expected


def test_unsafe_values_are_plain_text() -> None:
    assert read("q: !unsafe '{{ x }}'\n")[0].data == {"q": "{{ x }}"}


@pytest.mark.parametrize("keys", ["k", "kk"])
def test_merged_mappings_that_disagree_are_a_problem(keys: str) -> None:
    """PyYAML 6.0.4 keeps the first value of a one-letter key, the last of a longer one."""
    _, problems = read(f"a: &a {{{keys}: 1}}\nb: &b {{{keys}: 2}}\nc:\n  <<: [*a, *b]\n")
    assert [(p.line, p.message) for p in problems.items] == [
        (4, f"t.yml:4: the mappings merged here give {keys!r} different values")
    ]


def test_key_lines() -> None:
    doc, _ = read("all:\n  hosts:\n\n    h1: {a: 1,\n         b: 2}\n    h2:\n")
    hosts = doc.data["all"]["hosts"]
    assert doc.line(doc.data, "all") == 1
    assert (doc.line(hosts, "h1"), doc.line(hosts, "h2")) == (4, 6)
    assert doc.line(hosts["h1"], "b") == 5
    assert doc.site(hosts, "h2") == ("t.yml", 6, "h2")


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("a: 1\nb: 2\na: 3\n", "duplicate key 'a' (first at line 1)", 3),
        ("a: !vault |\n  $ANSIBLE_VAULT;1.1\n", "does not decrypt Ansible Vault", 1),
        ("a: !!binary aGk=\n", "binary data", 1),
        ("a: !foo x\n", "unsupported YAML tag '!foo'", 1),
        ("a: <<\n", "merge key", 1),
        ("l: [<<]\n", "merge key", 1),
        ("a: !!int x\n", "is not a valid !!int", 1),
        ("a: !!omap [{a: 1}]\n", "unsupported YAML tag", 1),
        ("x: {<<: [1]}\n", "a merge key (<<) takes a mapping", 1),
    ],
)
def test_problems_go_on_reading(text: str, message: str, line: int) -> None:
    _, problems = read(text + "after: 1\n")
    assert [(p.line, message in p.message) for p in problems.items] == [(line, True)]


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("a: *nope\n", "refers to no anchor", 1),
        ("a: &x [*x]\n", "refers to the collection that contains it", 1),
        ("a: 1\n---\nb: 2\n", "a second YAML document", 2),
        ("a: [1\nb: 2\n", "invalid YAML", 2),
        ("? [a]\n: 1\n", "a mapping key must be a plain value", 1),
        ("a: " + "[" * 50 + "]" * 50 + "\n", "nesting deeper than 20 levels", 1),
    ],
)
def test_fatal_problems_name_the_line(text: str, message: str, line: int) -> None:
    with pytest.raises(InventoryError) as info:
        read(text, Limits(yaml_depth=20))
    assert message in str(info.value)
    assert info.value.line == line


def test_aliases_are_counted_as_they_expand() -> None:
    text = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [*a, *a, *a]\nc: [*a]\n"
    assert read(text, Limits(alias_values=40))[0].data["c"] == [list(range(1, 10))]
    with pytest.raises(InventoryError, match="aliases expand to more than 30 values") as info:
        read(text, Limits(alias_values=30))
    assert info.value.line == 3
