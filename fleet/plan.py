"""Plans as data: ordered stages of steps, loaded from YAML or built in Python, rendered per host.

A plan is pure: loading, validating and rendering it contacts nothing, so ``fleet plan`` can print
exactly what a rollout would run. YAML shape::

    name: app-setup
    vars: {app_dir: /srv/app}              # defaults; a host's inventory vars override them
    converged: test -f /srv/app/.done      # optional: exit 0 = the whole plan already holds,
                                           # every stage is reported converged, nothing runs
    stages:
      - name: prepare                      # kind: ssh (default) runs its steps over SSH
        steps:
          - name: create the app dir
            check: test -d {{ app_dir }}   # exit 0 = already converged: apply is skipped
            apply: mkdir -p {{ app_dir }}
            verify: test -w {{ app_dir }}
            timeout: 60                    # seconds, default 600
            retries: 2                     # re-runs of a failing apply, default 0
            when: {datacenter: gra3}       # conditions on host facts and vars
            destructive: false
          - echo short form                # a bare string is a step with only ``apply``
          - name: app config                 # a file step: rendered with Jinja2 (sandboxed)
            template: templates/app.conf.j2  # relative to the plan file; `put:` copies a file
            dest: /etc/app.conf              # or a directory as is; replaced atomically, and
            mode: "0644"                     # only where the host's checksum differs
      - name: deploy                       # kind: python runs a function with the host's
        kind: python                       # fabric.Connection: a file next to the plan or a
        call: tasks.py:deploy              # module (package.module:func); check/verify too
      - name: rescue                       # provider stages: rescue, disk, reboot, wait_ssh
        kind: rescue

Placeholders ``{{ name }}`` take plan vars, the host's inventory vars and host facts
(``host.name``, ``host.address``, ``host.datacenter``, ``host.rack``, ``host.service``,
``host.labels.KEY``). Every value is shell-quoted, so it is always exactly one word and can never
break out of its argument: write ``rm -f {{ path }}``, not ``rm -f "{{ path }}"``.

Quoting cannot stop a word that starts with ``-`` from being read as an option by the command
(``ssh {{ target }}`` with ``target: -oProxyCommand=...`` runs the proxy command). So a value
(or an item of a list) that starts with ``-`` is refused when it is rendered, naming the host
and the variable, unless the placeholder says it may be an option: ``{{ flags | option }}``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fleet import plancheck, plancode, yamlsrc
from fleet.errors import PlanError
from fleet.inventory import Host
from fleet.plancode import FileOp

#: Stage kinds run by the provider rather than a shell (see fleet.stages.boot).
PROVIDER_KINDS = ("rescue", "disk", "reboot", "wait_ssh", "reinstall")
StageKind = Literal["ssh", "python", "rescue", "disk", "reboot", "wait_ssh", "reinstall"]
#: ``python`` stages calling this prefix run fleet's built-in plan functions (see
#: :mod:`fleet.plancode` for users' own: ``FILE.py:FUNCTION`` and ``package.module:FUNCTION``).
PYTHON_CALL_PREFIX = plancode.BUILTIN_PREFIX
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*(?:\|\s*([^\s}|]*)\s*)?\}\}")
#: The one placeholder filter: ``{{ NAME | option }}`` lets the value start with ``-``.
OPTION_FILTER = "option"
Scalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Strict):
    """One converging action: ``check`` (converged?), ``apply`` (make it so), ``verify`` (prove it).

    A file step has ``put`` (a local file or directory) or ``template`` (a local Jinja2
    template) instead of ``apply``, with ``dest`` and optional ``mode``/``owner``: its check is
    the host's checksum, so a re-run changes nothing. ``sudo``: run as root through sudo.
    """

    name: str = Field(min_length=1)
    apply: str | None = Field(default=None, min_length=1)
    put: str | None = Field(default=None, min_length=1)
    template: str | None = Field(default=None, min_length=1)
    dest: str | None = Field(default=None, min_length=1)
    mode: str | None = None
    owner: str | None = None
    sudo: bool = False
    check: str | None = None
    verify: str | None = None
    timeout: float = Field(default=600.0, gt=0)
    retries: int = Field(default=0, ge=0, le=20)
    retry_delay: float = Field(default=5.0, ge=0)
    when: str | dict[str, Scalar] | None = None
    destructive: bool = False


class Stage(_Strict):
    """An ordered group of steps (kind ``ssh``) or a provider action (rescue, disk, ...)."""

    name: str = Field(min_length=1)
    kind: StageKind = "ssh"
    steps: tuple[Step, ...] = ()
    when: str | dict[str, Scalar] | None = None
    timeout: float | None = Field(default=None, gt=0)
    call: str | None = None  # python stages: FILE.py:FUNC, package.module:FUNC, fleet.plans.*
    check: str | None = None  # python stages: a function saying "already converged"
    verify: str | None = None  # python stages: a function proving the stage held
    params: dict[str, Scalar | list[Scalar] | None] = Field(default_factory=dict)

    @field_validator("steps", mode="before")
    @classmethod
    def _short_steps(cls, value: Any) -> Any:
        if isinstance(value, list):
            return tuple(
                {"name": v if len(v) <= 60 else v[:57] + "...", "apply": v}
                if isinstance(v, str)
                else v
                for v in value
            )
        return value


class Plan(_Strict):
    """A whole plan. ``source`` says where it came from (file path, ``builtin:NAME``, ``adhoc``)."""

    name: str = Field(min_length=1)
    description: str = ""
    vars: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    converged: str | None = None
    stages: tuple[Stage, ...] = Field(min_length=1)
    source: str = "adhoc"
    #: sha256 of each local file the plan uses (calls' code, put sources, templates), set by
    #: :func:`parse_plan` (never written in a plan): part of the hash.
    code: dict[str, str] = Field(default_factory=dict)

    @property
    def hash(self) -> str:
        """Content hash (without ``source``, with the code and files it uses): tells whether a
        resumed run's plan changed."""
        body = plancheck.stable_body(self.model_dump(mode="json", exclude={"source"}))
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def step_keys(self) -> list[str]:
        return [f"{st.name}/{sp.name}" for st in self.stages for sp in st.steps]


def _check_structure(plan: Plan) -> list[tuple[tuple[Any, ...], str]]:
    """Rules a schema cannot express; returns (key path, message) pairs."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    seen: set[str] = set()
    for i, stage in enumerate(plan.stages):
        if stage.name in seen:
            problems.append((("stages", i, "name"), f"duplicate stage name {stage.name!r}"))
        seen.add(stage.name)
        if stage.kind == "ssh" and not stage.steps:
            problems.append((("stages", i), f"stage {stage.name!r} has no steps"))
        if stage.kind != "ssh" and stage.steps:
            problems.append((("stages", i, "steps"), f"a {stage.kind} stage takes no steps"))
        if stage.kind == "python" and not stage.call:
            problems.append((("stages", i), "a python stage needs `call: FILE.py:FUNCTION`"))
        for key in ("call", "check", "verify"):
            if stage.kind != "python" and getattr(stage, key):
                problems.append((("stages", i, key), f"only python stages take `{key}`"))
        names: set[str] = set()
        for j, step in enumerate(stage.steps):
            where = ("stages", i, "steps", j)
            if step.name in names:
                problems.append(((*where, "name"), f"duplicate step name {step.name!r}"))
            names.add(step.name)
            problems += [((*where, key), msg) for key, msg in plancheck.step_problems(step)]
            if step.destructive and not step.check:
                problems.append(
                    (
                        where,
                        "a destructive step needs a `check`, so a re-run or resume can tell it already ran",
                    )
                )
    return problems


def _loc_text(loc: tuple[Any, ...]) -> str:
    return ".".join(
        str(p) for p in loc if not (isinstance(p, str) and p in ("str", "dict[str,...]"))
    )


def parse_plan(data: Any, source: str, lines: yamlsrc.Lines | None = None) -> Plan:
    """Validate plain data (from YAML or Python) into a :class:`Plan`, or raise PlanError."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise PlanError("a plan is a mapping with `name` and `stages`", path=source, line=1)
    if "code" in data:
        raise PlanError(
            "unknown key", path=source, line=yamlsrc.line_of(lines, ("code",)), key="code"
        )
    try:
        plan = Plan.model_validate({**data, "source": source})
    except ValidationError as exc:
        # A typo shows up twice (unknown key + missing field): name the typo first.
        err = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        loc = tuple(p for p in err["loc"] if not isinstance(p, str) or p in _known_keys(data, err))
        line = yamlsrc.line_of(lines, loc)
        if err["type"] == "missing":
            loc = (*loc, err["loc"][-1])
        msg = err["msg"].replace("Extra inputs are not permitted", "unknown key")
        raise PlanError(msg, path=source, line=line, key=_loc_text(loc)) from None
    for loc, msg in _check_structure(plan):
        raise PlanError(msg, path=source, line=yamlsrc.line_of(lines, loc), key=_loc_text(loc))
    digests, problems = plancheck.code_digests(plan)
    for loc, msg in problems:
        raise PlanError(msg, path=source, line=yamlsrc.line_of(lines, loc), key=_loc_text(loc))
    return plan.model_copy(update={"code": digests}) if digests else plan


def _known_keys(data: Any, err: Any) -> set[str]:
    """Path parts that are real keys of the document (pydantic adds union-branch names)."""
    keys: set[str] = set()
    node = data
    for part in err["loc"]:
        if isinstance(node, dict) and part in node:
            keys.add(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
    return keys


def load_plan_file(path: Path) -> Plan:
    data, lines = yamlsrc.load(path)
    return parse_plan(data, str(path), lines)


# ---------------------------------------------------------------------------------------------
# Rendering: a plan for one host, with every placeholder replaced by a quoted value.


@dataclass(frozen=True)
class RenderedStep:
    stage: str
    name: str
    apply: str
    check: str | None
    verify: str | None
    timeout: float
    retries: int
    retry_delay: float
    destructive: bool
    file: FileOp | None = None
    sudo: bool = False

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.name}"


@dataclass(frozen=True)
class RenderedStage:
    name: str
    kind: str
    timeout: float | None
    steps: tuple[RenderedStep, ...] = ()
    call: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    check: str | None = None
    verify: str | None = None
    base: str | None = None  # the plan's directory, where FILE.py calls are found


@dataclass(frozen=True)
class HostPlan:
    """What will run on one host: stages whose ``when`` holds, commands rendered."""

    host: str
    stages: tuple[RenderedStage, ...]
    skipped: tuple[str, ...] = field(default_factory=tuple)
    converged: str | None = None

    @property
    def destructive_steps(self) -> list[str]:
        return [s.key for st in self.stages for s in st.steps if s.destructive]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def host_context(host: Host, plan_vars: Mapping[str, Any]) -> dict[str, Any]:
    """The names a placeholder or a ``when`` may use for this host."""
    ctx: dict[str, Any] = {**plan_vars, **host.vars}
    ctx.update(
        {
            "host.name": host.name,
            "host.address": host.address,
            "host.datacenter": host.datacenter,
            "host.rack": host.rack,
            "host.service": host.service_name,
            "hybrid": host.hybrid,
            "datacenter": host.datacenter,
            "rack": host.rack,
        }
    )
    ctx.update({f"host.labels.{k}": v for k, v in host.labels.items()})
    ctx.update({f"labels.{k}": v for k, v in host.labels.items()})
    return ctx


def _quote(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(_quote(v) for v in value)
    return shlex.quote(str(value))


class PendingFacts(dict[str, Any]):
    """Rendering context before a host's facts are known (``fleet plan``, validation):
    ``facts.X`` renders as ``<facts.X>``, to be filled in when the stage runs."""

    def __missing__(self, key: str) -> Any:
        if key.startswith("facts."):
            return _Pending(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return (isinstance(key, str) and key.startswith("facts.")) or super().__contains__(key)


class _Pending(str):
    __slots__ = ()


def render(
    template: str, ctx: Mapping[str, Any], *, where: str, source: str, quote: bool = True
) -> str:
    """Replace ``{{ name }}`` by the quoted value (the plain text with ``quote=False``, for
    values fleet quotes itself); an undefined or empty-null name is an error, and so is a value
    starting with ``-`` unless written ``{{ name | option }}``."""

    def one(match: re.Match[str]) -> str:
        name, flag = match.group(1), match.group(2)
        if flag is not None and flag != OPTION_FILTER:
            raise PlanError(
                f"unknown filter {flag!r} in {match.group(0)}",
                path=source,
                key=where,
                hint=f"the only filter is `{OPTION_FILTER}`: {{{{ {name} | {OPTION_FILTER} }}}}",
            )
        if name in ctx and isinstance(ctx[name], _Pending):
            return f"<{name}>"
        if name not in ctx or ctx[name] is None:
            raise PlanError(f"undefined variable {name!r}", path=source, key=where)
        value = ctx[name]
        if flag is None:
            _refuse_option_like(name, value, ctx, where=where, source=source)
        return _quote(value) if quote else str(value)

    return _PLACEHOLDER.sub(one, template)


def _refuse_option_like(
    name: str, value: Any, ctx: Mapping[str, Any], *, where: str, source: str
) -> None:
    """A word starting with ``-`` becomes an option of the command it is given to: refuse it,
    naming the host and the variable (a list renders one word per item: each is checked)."""
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        word = _quote(item) if isinstance(item, bool) else str(item)
        if word.startswith("-"):
            shown = word if len(word) <= 24 else word[:21] + "..."
            raise PlanError(
                f"host {ctx.get('host.name', '?')}: {{{{ {name} }}}} would start a word with "
                f"'-' ({shown!r}), which the command would read as an option",
                path=source,
                key=where,
                hint=f"fix the value, or write {{{{ {name} | {OPTION_FILTER} }}}} if it may be "
                "an option",
            )


def condition_holds(when: str | Mapping[str, Any] | None, ctx: Mapping[str, Any]) -> bool:
    """``when``: a name (truthy), ``not NAME``, or a mapping of name -> expected value (all)."""
    if when is None:
        return True
    if isinstance(when, str):
        text = when.strip()
        negate = text.startswith("not ")
        name = text[4:].strip() if negate else text
        return bool(ctx.get(name)) != negate
    return all(ctx.get(k) is not None and str(ctx[k]) == str(v) for k, v in when.items())


def with_facts(ctx: dict[str, Any], facts: Mapping[str, Any] | None) -> dict[str, Any]:
    """``ctx`` plus ``facts.NAME`` entries; ``None`` facts (not gathered yet) render pending."""
    if facts is None:
        return PendingFacts(ctx)
    return {**ctx, **{f"facts.{k}": v for k, v in facts.items()}}


def render_stage(
    plan: Plan, stage: Stage, ctx: Mapping[str, Any]
) -> tuple[RenderedStage | None, list[str]]:
    """Render one stage (None when its ``when`` is false) and the names of skipped steps."""
    if not condition_holds(stage.when, ctx):
        return None, [stage.name]
    steps: list[RenderedStep] = []
    skipped: list[str] = []
    for step in stage.steps:
        if not condition_holds(step.when, ctx):
            skipped.append(f"{stage.name}/{step.name}")
            continue

        def r(text: str | None, part: str, step: Step = step) -> str | None:
            where = f"stages.{stage.name}.{step.name}.{part}"
            return None if text is None else render(text, ctx, where=where, source=plan.source)

        file = _file_op(plan, stage, step, ctx)
        steps.append(
            RenderedStep(
                stage.name,
                step.name,
                file.describe() if file else r(step.apply, "apply") or "",
                r(step.check, "check"),
                r(step.verify, "verify"),
                step.timeout,
                step.retries,
                step.retry_delay,
                step.destructive,
                file,
                step.sudo,
            )
        )
    base = plancode.base_dir(plan.source)
    rendered = RenderedStage(
        stage.name,
        stage.kind,
        stage.timeout,
        tuple(steps),
        stage.call,
        dict(stage.params),
        stage.check,
        stage.verify,
        str(base) if base else None,
    )
    return rendered, skipped


def _file_op(plan: Plan, stage: Stage, step: Step, ctx: Mapping[str, Any]) -> FileOp | None:
    """The rendered file operation of a put or template step (None for a command step)."""
    kind: Literal["put", "template"] = "put" if step.put else "template"
    name = step.put or step.template
    if name is None or step.dest is None:
        return None
    where = f"stages.{stage.name}.{step.name}.dest"
    dest = render(step.dest, ctx, where=where, source=plan.source, quote=False)
    try:
        source = plancode.local_path(name, plancode.base_dir(plan.source), kind)
    except plancode.CodeError as exc:
        raise PlanError(str(exc), path=plan.source, key=where) from exc
    return FileOp(kind, str(source), dest, step.mode, step.owner)


def render_for_host(plan: Plan, host: Host, facts: Mapping[str, Any] | None = None) -> HostPlan:
    """Render every stage for ``host``; raises PlanError naming the step and variable.

    Without ``facts`` (before any host is contacted), ``facts.X`` placeholders render as
    ``<facts.X>``: the real values are filled in when the stage runs.
    """
    ctx = with_facts(host_context(host, plan.vars), facts)
    stages: list[RenderedStage] = []
    skipped: list[str] = []
    for stage in plan.stages:
        rendered, skips = render_stage(plan, stage, ctx)
        skipped += skips
        if rendered is not None:
            stages.append(rendered)
    converged = None
    if plan.converged:
        converged = render(plan.converged, ctx, where="converged", source=plan.source)
    return HostPlan(host.name, tuple(stages), tuple(skipped), converged)


def adhoc_plan(commands: list[str], name: str = "adhoc") -> Plan:
    """A one-stage plan running ``commands`` in order (``fleet run``)."""
    steps = [{"name": f"{i + 1:02d} {c[:50]}", "apply": c} for i, c in enumerate(commands)]
    return parse_plan({"name": name, "stages": [{"name": "commands", "steps": steps}]}, "adhoc")
