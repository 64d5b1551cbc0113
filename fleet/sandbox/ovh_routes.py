"""The OVH routes the fake serves: (method, path pattern) -> a call of the model."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from fleet.sandbox.ovh_checks import OvhApiError, bad_request

if TYPE_CHECKING:
    from fleet.sandbox.ovh_model import OvhModel

Call = Callable[[dict[str, str], dict[str, str], Any], Any]


class Router:
    """The OVH routes the fake serves, as (method, path regex) -> model call."""

    def __init__(self, model: OvhModel) -> None:
        m = model
        sn = "/dedicated/server/(?P<sn>[^/]+)"
        routes: list[tuple[str, str, Call]] = [
            ("GET", "/dedicated/server", lambda p, q, b: m.server_names()),
            ("GET", sn, lambda p, q, b: m.server_json(p["sn"])),
            ("PUT", sn, lambda p, q, b: m.update_server(p["sn"], b)),
            ("GET", f"{sn}/boot", lambda p, q, b: m.boot_ids(p["sn"], q.get("bootType"))),
            ("GET", f"{sn}/boot/(?P<id>[^/]+)", lambda p, q, b: m.boot_json(p["sn"], _id(p))),
            ("POST", f"{sn}/reboot", lambda p, q, b: m.reboot(p["sn"])),
            (
                "GET",
                f"{sn}/task",
                lambda p, q, b: m.task_ids(p["sn"], q.get("function"), q.get("status")),
            ),
            ("GET", f"{sn}/task/(?P<id>[^/]+)", lambda p, q, b: m.task_json(p["sn"], _id(p))),
            (
                "POST",
                f"{sn}/task/(?P<id>[^/]+)/cancel",
                lambda p, q, b: m.cancel_task(p["sn"], _id(p)),
            ),
            ("GET", f"{sn}/specifications/hardware", lambda p, q, b: m.hardware_json(p["sn"])),
            ("GET", f"{sn}/install/compatibleTemplates", lambda p, q, b: m.templates_json(p["sn"])),
            ("GET", f"{sn}/install/status", lambda p, q, b: m.install_status(p["sn"])),
            ("POST", f"{sn}/reinstall", lambda p, q, b: m.reinstall(p["sn"], b)),
        ]
        self._routes = [(method, re.compile(f"{path}/?"), call) for method, path, call in routes]

    def dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        allowed = False
        for want, pattern, call in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if want != method:
                allowed = True
                continue
            params = {key: unquote(value) for key, value in match.groupdict().items()}
            return call(params, query, body)
        if allowed:
            raise OvhApiError(405, f"Method {method} not allowed on {path}")
        raise OvhApiError(404, f"Got an invalid (or empty) URL: {path}")


def _id(params: dict[str, str]) -> int:
    text = params["id"]
    if not text.isdigit():
        raise bad_request(f"Invalid value for parameter: {text!r} is not a long")
    return int(text)
