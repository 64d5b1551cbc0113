"""Template steps' rendering: Jinja2's sandbox on the controller, nothing else.

A template is rendered locally, for one host, with :class:`jinja2.sandbox.SandboxedEnvironment`
(attribute and method access checked, ``str.format`` guarded, ranges bounded) and
``StrictUndefined`` (a name the context lacks is an error, never an empty string). Includes and
imports are confined to the template's own directory. The context is plain data: the plan's
vars, the host's vars (they win), ``host`` (name, address, datacenter, rack, service, labels,
groups), ``facts`` (gathered by earlier stages) and ``vars`` (the merged vars as one mapping).
So a template can read values and shape text, and cannot call anything on the controller.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleet.errors import PlanError
from fleet.inventory import Host


def context(host: Host, plan_vars: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    """The names a template sees for ``host``."""
    merged = {**plan_vars, **host.vars}
    return {
        **merged,
        "vars": merged,
        "facts": dict(facts),
        "host": {
            "name": host.name,
            "address": host.address,
            "datacenter": host.datacenter,
            "rack": host.rack,
            "service": host.service_name,
            "labels": dict(host.labels),
            "groups": list(host.groups),
        },
    }


def render(source: str, names: Mapping[str, Any]) -> bytes:
    """The template file ``source`` rendered with ``names``, as UTF-8 bytes.

    Raises:
        PlanError: a syntax error, an undefined name, or something the sandbox refused (the
            message names the template and line).
    """
    # imported here: a run without template steps does not pay Jinja2's import
    from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    path = Path(source)
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(path.parent)),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    try:
        return env.get_template(path.name).render(**names).encode()
    except TemplateSyntaxError as exc:
        raise PlanError(
            exc.message or str(exc), path=exc.filename or source, line=exc.lineno
        ) from exc
    except TemplateError as exc:
        raise PlanError(f"template: {exc}", path=source) from exc
    except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as exc:
        # what an expression can raise (a too large range, 1/0, a bad index): bad input
        raise PlanError(f"template: {type(exc).__name__}: {exc}", path=source) from exc
