"""Template steps render in Jinja2's sandbox: values in, text out, nothing run on the controller.

Each escape below is a known way out of a plain Jinja2 environment (reaching ``os`` through an
object's globals, the class hierarchy, ``str.format``, loaders outside the template's folder).
Every payload would create a marker file if it ran; the test checks it is refused and that the
marker never appears.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import PlanError
from fleet.inventory import Host
from fleet.stages import template

HOST = Host("web-1", "192.0.2.10", datacenter="gra3", labels={"role": "web"}, vars={"port": 8080})


def render(tmp_path: Path, text: str, facts: dict[str, object] | None = None) -> str:
    (tmp_path / "t.j2").write_text(text)
    names = template.context(HOST, {"port": 80, "greeting": "hi"}, facts or {})
    return template.render(str(tmp_path / "t.j2"), names).decode()


def test_host_vars_win_over_plan_vars_and_facts_are_there(tmp_path: Path) -> None:
    text = "{{ host.name }} {{ port }} {{ greeting }} {{ host.labels.role }} {{ facts.disks }}\n"
    assert render(tmp_path, text, {"disks": 2}) == "web-1 8080 hi web 2\n"


def test_an_undefined_name_is_an_error_not_an_empty_string(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="'nope' is undefined"):
        render(tmp_path, "value = {{ nope }}\n")


def test_a_syntax_error_names_the_template_and_line(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as caught:
        render(tmp_path, "ok\n{% if %}\n")
    assert caught.value.path is not None and caught.value.path.endswith("t.j2")
    assert caught.value.line == 2


ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
    "{{ joiner.__init__.__globals__['os'].popen('touch MARKER').read() }}",
    "{{ lipsum.__globals__['os'].popen('touch MARKER').read() }}",
    "{{ namespace.__init__.__globals__.__builtins__.open('MARKER', 'w') }}",
    "{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch MARKER') }}",
    "{{ host.__class__.__init__.__globals__ }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(host) }}",
    "{{ facts.update.__self__.__class__.__base__.__subclasses__() }}",
    "{{ range.__self__.__import__('os').system('touch MARKER') }}",
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_escapes_out_of_the_sandbox_are_refused(
    tmp_path: Path, payload: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    with pytest.raises(PlanError):
        render(tmp_path, payload.replace("MARKER", str(marker)))
    assert not marker.exists()


def test_includes_stay_inside_the_template_folder(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not leak\n")
    folder = tmp_path / "templates"
    folder.mkdir()
    for ref in ("../secret.txt", str(secret), "/etc/passwd"):
        with pytest.raises(PlanError):
            render(folder, f"{{% include '{ref}' %}}")


def test_ranges_are_bounded(tmp_path: Path) -> None:
    with pytest.raises(PlanError):
        render(tmp_path, "{{ range(10**9) | list | length }}")
