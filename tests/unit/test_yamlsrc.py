"""YAML with a line map: values, key lines, duplicate keys and syntax errors name file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleet import yamlsrc
from fleet.errors import InputError

DOC = textwrap.dedent(
    """\
    name: demo
    vars:
      app_dir: /srv/app
    stages:
      - name: prepare
        steps:
          - name: one
            apply: "true"
      - name: reboot
        kind: reboot
    """
)


def test_values_are_plain_python() -> None:
    data, _ = yamlsrc.loads(DOC, "plan.yaml")
    assert data["name"] == "demo"
    assert data["vars"] == {"app_dir": "/srv/app"}
    assert data["stages"][1] == {"name": "reboot", "kind": "reboot"}
    assert data["stages"][0]["steps"][0]["apply"] == "true"


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("name",), 1),
        (("vars",), 2),
        (("vars", "app_dir"), 3),
        (("stages",), 4),
        (("stages", 0), 5),
        (("stages", 0, "steps", 0, "name"), 7),
        (("stages", 0, "steps", 0, "apply"), 8),
        (("stages", 1), 9),
        (("stages", 1, "kind"), 10),
    ],
)
def test_every_key_and_item_has_its_line(path: tuple[object, ...], line: int) -> None:
    _, lines = yamlsrc.loads(DOC, "plan.yaml")
    assert lines[path] == line


def test_a_key_maps_to_its_own_line_not_its_values() -> None:
    # `vars:` is on line 2 while its mapping value starts on line 3.
    _, lines = yamlsrc.loads(DOC, "plan.yaml")
    assert lines[("vars",)] == 2
    assert lines[("stages", 0, "steps")] == 6


def test_line_of_falls_back_to_the_nearest_ancestor() -> None:
    _, lines = yamlsrc.loads(DOC, "plan.yaml")
    assert yamlsrc.line_of(lines, ("stages", 1, "steps", 3, "name")) == 9
    assert yamlsrc.line_of(lines, ("nowhere", "deep")) == 1
    assert yamlsrc.line_of({}, ("a",)) is None


def test_duplicate_key_is_refused_with_its_line_and_path() -> None:
    text = "stages:\n  - name: a\n    apply: x\n    apply: y\n"
    with pytest.raises(InputError) as info:
        yamlsrc.loads(text, "dup.yaml")
    err = info.value
    assert (err.path, err.line, err.key) == ("dup.yaml", 4, "stages.0.apply")
    assert "duplicate key" in str(err)
    assert str(err).startswith("dup.yaml:4: stages.0.apply:")


def test_duplicate_top_level_key() -> None:
    with pytest.raises(InputError) as info:
        yamlsrc.loads("name: a\nother: 1\nname: b\n", "top.yaml")
    assert (info.value.line, info.value.key) == (3, "name")


def test_same_key_in_sibling_mappings_is_fine() -> None:
    data, _ = yamlsrc.loads("- name: a\n- name: b\n", "list.yaml")
    assert data == [{"name": "a"}, {"name": "b"}]


def test_syntax_error_names_file_and_line() -> None:
    text = "name: x\nstages:\n  - name: a\n    steps: [one\n  - name: b\n"
    with pytest.raises(InputError) as info:
        yamlsrc.loads(text, "bad.yaml")
    assert info.value.path == "bad.yaml"
    assert info.value.line == 5
    assert "YAML syntax error" in str(info.value)
    assert str(info.value).startswith("bad.yaml:5:")


def test_tab_indentation_is_a_syntax_error_with_line() -> None:
    with pytest.raises(InputError) as info:
        yamlsrc.loads("a: 1\nb:\n\t- c\n", "tabs.yaml")
    assert info.value.line == 3


def test_empty_document_is_none() -> None:
    assert yamlsrc.loads("", "empty.yaml") == (None, {})
    assert yamlsrc.loads("# only a comment\n", "empty.yaml") == (None, {})


def test_several_documents_are_refused() -> None:
    with pytest.raises(InputError) as info:
        yamlsrc.loads("a: 1\n---\nb: 2\n", "multi.yaml")
    assert info.value.path == "multi.yaml"


def test_python_tags_on_scalars_are_refused_with_line() -> None:
    with pytest.raises(InputError) as info:
        yamlsrc.loads("a: 1\nb: !!python/name:os.system\n", "evil.yaml")
    assert info.value.line == 2


def test_python_tags_on_collections_construct_nothing(tmp_path: Path) -> None:
    # Collections are walked node by node, so their tags are ignored: plain data comes back.
    target = tmp_path / "pwned"
    text = f"a: !!python/object/apply:os.system ['touch {target}']\n"
    data, _ = yamlsrc.loads(text, "evil.yaml")
    assert data == {"a": [f"touch {target}"]}
    assert not target.exists()


def test_anchors_and_aliases_resolve() -> None:
    data, _ = yamlsrc.loads("base: &b {x: 1}\ncopy: *b\n", "alias.yaml")
    assert data["copy"] == {"x": 1}


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("k: v\n", encoding="utf-8")
    assert yamlsrc.load(path) == ({"k": "v"}, {(): 1, ("k",): 1})


def test_load_of_a_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(InputError) as info:
        yamlsrc.load(path)
    assert info.value.path == str(path)
    assert "cannot read" in str(info.value)
