"""The docs' samples, statically: every console block is marked, every YAML/TOML sample loads,
sandbox samples stay on their hosts; and the sample parser itself."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from fleet.config import read_file
from fleet.errors import FleetError
from fleet.inventory import load_inventory
from fleet.plan import load_plan_file
from fleet.schedule import load_windows
from tests.docsamples import ENVS, Block, find_line, line_pattern, pages, parse_console, parse_page

PAGES = pages()
BLOCKS = [b for p in PAGES for b in p.blocks]
#: Sandbox samples run against the test session's sandbox: they keep to these hosts.
SANDBOX_HOSTS = {f"srv-{n:03d}" for n in range(16, 21)}
#: Commands that touch hosts, and must therefore name them with --limit.
_TOUCHING = re.compile(r"\bfleet\s+(rollout|run)\b")
_FORBIDDEN = re.compile(r"\bfleet\s+(reinstall|ovh\s+boot|schedule|scheduler)\b")


def _ids(block: Block) -> str:
    return block.where


def test_the_docs_have_samples_of_every_kind() -> None:
    envs = {b.env for b in BLOCKS}
    assert {"quickstart", "sandbox", None} <= envs
    assert any(b.hidden for b in BLOCKS)
    assert any(b.file for b in BLOCKS)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "console"], ids=_ids)
def test_every_console_block_says_whether_it_runs(block: Block) -> None:
    assert block.test is not None, f"{block.where}: precede it with <!-- test: ENV -->"
    assert block.env in (*ENVS, None), f"{block.where}: unknown test env {block.test!r}"
    if block.test.startswith("skip"):
        assert block.test.removeprefix("skip").strip(": "), f"{block.where}: say why it is skipped"
    assert block.commands(), f"{block.where}: no `$ ` command"


def test_a_page_runs_in_one_environment() -> None:
    for page in PAGES:
        page.env  # noqa: B018 - raises when a page mixes environments


def _limit_terms(command: str) -> list[str]:
    words = shlex.split(command.split(" # ")[0])
    for i, word in enumerate(words):
        if word in ("-l", "--limit") and i + 1 < len(words):
            return words[i + 1].split(",")
        if word.startswith("--limit="):
            return word.split("=", 1)[1].split(",")
    return []


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.env == "sandbox"], ids=_ids)
def test_sandbox_samples_keep_to_their_hosts(block: Block) -> None:
    for command in block.commands():
        assert not _FORBIDDEN.search(command.text), f"{block.where}: {command.text}"
        if _TOUCHING.search(command.text):
            terms = _limit_terms(command.text)
            assert terms, f"{block.where}: `{command.text}` needs --limit"
            assert set(terms) <= SANDBOX_HOSTS, f"{block.where}: {terms} not in srv-016..020"


def _yaml_blocks() -> list[Block]:
    return [b for b in BLOCKS if b.lang == "yaml"]


@pytest.mark.parametrize("block", _yaml_blocks(), ids=_ids)
def test_yaml_samples_load(block: Block, tmp_path: Path) -> None:
    # the page's other files (a plan's templates, its tasks.py) sit where the page puts them
    for sibling in BLOCKS:
        if sibling.page == block.page and sibling.file and sibling is not block:
            (tmp_path / sibling.file).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / sibling.file).write_text(sibling.body)
    path = tmp_path / (block.file or "sample.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block.body)
    data = yaml.safe_load(block.body)
    assert isinstance(data, dict), f"{block.where}: a YAML sample is a mapping"
    try:
        if "stages" in data:
            plan = load_plan_file(path)
            assert plan.stages
        elif "all" in data:
            assert load_inventory([path]).select(None)
        elif "windows" in data:
            assert load_windows(path)
        else:
            pytest.fail(f"{block.where}: a YAML sample is a plan, an inventory or windows")
    except FleetError as exc:
        pytest.fail(f"{block.where}: {exc.message}")


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "ini"], ids=_ids)
def test_ini_samples_are_inventories(block: Block, tmp_path: Path) -> None:
    path = tmp_path / (Path(block.file).name if block.file else "hosts.ini")
    path.write_text(block.body)
    try:
        assert load_inventory([path]).select(None)
    except FleetError as exc:
        pytest.fail(f"{block.where}: {exc.message}")


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "toml"], ids=_ids)
def test_toml_samples_are_valid_settings(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(block.body)
    assert read_file(path)


def test_plan_loading_catches_a_broken_sample(tmp_path: Path) -> None:
    """The sample check is not vacuous: the misspelled plan of the how-to is refused."""
    typo = next(b for b in BLOCKS if b.file == "plans/typo.yaml")
    path = tmp_path / "typo.yaml"
    path.write_text(typo.body)
    with pytest.raises(FleetError, match="chek: unknown key"):
        load_plan_file(path)


# ---------------------------------------------------------------------------------------------
# The parser


PAGE = """\
# Title

<!-- test: sandbox -->
```console
$ fleet rollout plans/x.yaml \\
    --limit srv-016   # exit 2
line one
...

$ fleet status
```

<!-- test: sandbox
$ touch hidden
-->

Text between.

```console
$ fleet plan
```

<!-- file: plans/x.yaml -->
```yaml
name: x
```

- item

    <!-- test: skip: real servers -->
    ```console
    $ fleet rollout y
    ```
"""


def test_parse_page_finds_blocks_markers_and_hidden_steps(tmp_path: Path) -> None:
    page = parse_page(tmp_path / "p.md", PAGE)
    kinds = [(b.lang, b.test, b.file, b.hidden) for b in page.blocks]
    assert kinds == [
        ("console", "sandbox", None, False),
        ("console", "sandbox", None, True),
        ("console", None, None, False),
        ("yaml", None, "plans/x.yaml", False),
        ("console", "skip: real servers", None, False),
    ]
    first = page.blocks[0].commands()
    assert first[0].text.startswith("fleet rollout plans/x.yaml --limit srv-016")
    assert first[0].exit_code == 2
    assert first[0].output == ("line one",)
    assert first[1].text == "fleet status" and first[1].exit_code == 0
    assert page.blocks[-1].commands()[0].text == "fleet rollout y"
    assert page.env == "sandbox"


def test_parse_console_refuses_output_without_a_command() -> None:
    with pytest.raises(ValueError, match="before the first command"):
        parse_console("orphan\n$ fleet status\n")


def test_output_lines_match_with_wildcards_and_bind_run_ids() -> None:
    shown = "2026-11-25T17:17:27.299+00:00 run r20261125-171726-dfb2 end done ok=4 ..."
    real = "2026-12-01T08:00:00.000+00:00 run r20261201-080000-abcd end done ok=4 failed=0"
    assert find_line(shown, ["noise", real]) == {"r20261125-171726-dfb2": "r20261201-080000-abcd"}
    assert find_line(shown, [real.replace("ok=4", "ok=3")]) is None


def test_output_lines_match_whole_lines_with_any_spacing() -> None:
    assert find_line("srv-016  ok ...", ["srv-016   ok"]) == {}
    assert find_line("srv-016  ok ...", ["srv-016   ok   waiting"]) == {}
    assert find_line("srv-016  ok", ["srv-016   ok   waiting"]) is None
    assert find_line("srv-016  ok", ["xsrv-016 ok"]) is None
    assert find_line("127.100.0.1:2222", ["127.103.0.1:2222"]) == {}


def test_line_pattern_escapes_regex_characters() -> None:
    pattern, ids = line_pattern("a (b) [c] *d*")
    assert pattern.fullmatch("a (b) [c] *d*") and not pattern.fullmatch("a b c d")
    assert ids == []
