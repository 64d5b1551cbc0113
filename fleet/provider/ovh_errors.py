"""Decoding OVH's answers and classifying its errors into :mod:`fleet.errors`.

Every python-ovh exception, every ``requests`` error and every error body shape (legacy
``{errorCode, httpCode, message}``, current ``{class, message, details}``, message-only, HTML)
becomes a fleet error that names the server, the HTTP status and OVH's ``X-Ovh-QueryId``, and
says by its class what to do: retry (transient), adopt or wait (a task already running), stop
at once (credentials), or fail the host once with OVH's message (refused for good).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

import ovh.exceptions

from fleet.errors import (
    ProviderAuthError,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderRefused,
    ProviderTransient,
)
from fleet.provider.ratelimit import parse_retry_after

if TYPE_CHECKING:
    from collections.abc import Mapping

#: python-ovh exceptions that mean "bad credentials, signature or rights".
_AUTH_EXCEPTIONS: tuple[type[Exception], ...] = (
    ovh.exceptions.InvalidKey,
    ovh.exceptions.InvalidCredential,
    ovh.exceptions.NotCredential,
    ovh.exceptions.NotGrantedCall,
)
#: python-ovh exceptions (raised without a response) that mean "refused for good": the status.
_REFUSED_EXCEPTIONS: dict[type[Exception], int] = {
    ovh.exceptions.BadParametersError: 400,
    ovh.exceptions.Forbidden: 403,
    ovh.exceptions.ResourceExpiredError: 460,
}
#: python-ovh exceptions raised without a response that mean "try again later".
_TRANSIENT_EXCEPTIONS: tuple[type[Exception], ...] = (
    ovh.exceptions.HTTPError,
    ovh.exceptions.NetworkError,
    ovh.exceptions.InvalidResponse,
)


class Response(Protocol):
    """The part of ``requests.Response`` this module reads."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...


class ApiTransient(ProviderTransient):
    """A transient error that may say how long to wait (``Retry-After`` of a 429 or a 503)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


def error_from_response(response: Response, *, server: str | None, action: str) -> ProviderError:
    """Classify an HTTP error answer, whatever its body shape.

    - credentials, signature or rights (401; a 400/403 whose body says so): ProviderAuthError;
    - 429, 5xx but 501, and pages that are not OVH's JSON (a proxy's HTML): transient;
    - a 409 about a task already running: ProviderConflict (the caller adopts or waits);
    - 404: ProviderNotFound; every other 4xx and 501 (a 403 "not supported for this server",
      a 400 bad value, a 409 "not compatible", a 460 expired service): ProviderRefused, never
      retried, with OVH's own message.
    """
    status = response.status_code
    headers = response.headers
    query_id = headers.get("X-Ovh-QueryId")
    ok, body = decode_json(response.content)
    detail = body_message(body) if ok else non_json_summary(response.content, headers)
    message = f"{action}: HTTP {status} {detail}"
    context: dict[str, Any] = {"server": server, "query_id": query_id, "status": status}
    if status == 401 or (status in (400, 403) and is_auth_body(body)):
        return ProviderAuthError(message, hint=_AUTH_HINT, **context)
    if status == 429 or (status >= 500 and status != 501) or (not ok and status != 403):
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return ApiTransient(message, retry_after=retry_after, **context)
    if status == 409 and is_task_conflict(body):
        return ProviderConflict(message, **context)
    if status == 404:
        return ProviderNotFound(message, **context)
    if 400 <= status < 500 or status == 501:
        return ProviderRefused(message, hint=_REFUSED_HINT, **context)
    return ProviderError(message, **context)


_AUTH_HINT = "check the application key/secret and consumer key, and the consumer key's rights"
_REFUSED_HINT = "OVH refuses this request for this server: retrying cannot help"
#: Legacy ``errorCode`` values of signing and credential failures. OVH answers a bad signature
#: (a wrong application secret) with 400 ``INVALID_SIGNATURE``, not 401/403. ``FORBIDDEN``
#: is not among them: OVH also uses it for what a server cannot do, so its message decides.
_AUTH_CODES = frozenset(
    {
        "INVALID_SIGNATURE",
        "INVALID_CREDENTIAL",
        "NOT_CREDENTIAL",
        "INVALID_KEY",
        "NOT_GRANTED_CALL",
        "QUERY_TIME_OUT",
    }
)
#: What OVH's messages about keys, signatures and rights say (lower case).
_AUTH_PHRASES = (
    "invalid signature",
    "credential",
    "application key",
    "consumer key",
    "has not been granted",
    "login first",
    "query out of time",
)


def is_auth_body(body: Any) -> bool:
    """Whether an error body (any shape) reports a signing, credential or rights failure.

    The code decides in the legacy shape; otherwise the message (the current shape says
    ``{"class": "Client::BadRequest", "message": "Invalid signature"}`` for a bad signature,
    and ``Client::Forbidden`` both for "This call has not been granted" and for "This
    operation is not supported for this server").
    """
    if not isinstance(body, dict):
        return False
    kind = str(body.get("class") or "")
    message = str(body.get("message") or "").lower()
    return (
        str(body.get("errorCode") or "") in _AUTH_CODES
        or kind.startswith("Client::Unauthorized")
        or any(phrase in message for phrase in _AUTH_PHRASES)
    )


def is_task_conflict(body: Any) -> bool:
    """Whether a 409 says a task is already running (to adopt or wait out), rather than that
    the request conflicts with the server itself (``Client::Conflict::OperatingSystemIncompatible``,
    ``...::HardwareRaidIncompatibleOnServer``...: permanent). Without a detailed class: a task."""
    kind = str(body.get("class") or "") if isinstance(body, dict) else ""
    if kind.count("::") >= 2:
        return kind.endswith("AlreadyExists")
    return True


def error_from_exception(exc: Exception, *, server: str | None, action: str) -> ProviderError:
    """Classify a python-ovh exception or a ``requests`` error (an ``OSError``)."""
    response = getattr(exc, "response", None)
    if isinstance(exc, ovh.exceptions.APIError) and response is not None:
        return error_from_response(response, server=server, action=action)
    text = f"{action}: {exception_text(exc)}"
    if _is_auth_exception(exc, text):
        return ProviderAuthError(text, server=server, hint=_AUTH_HINT)
    if isinstance(exc, (*_TRANSIENT_EXCEPTIONS, OSError)):
        return ApiTransient(text, server=server)
    if isinstance(exc, ovh.exceptions.ResourceNotFoundError):
        return ProviderNotFound(text, server=server, status=404)
    if isinstance(exc, ovh.exceptions.ResourceConflictError):
        return ProviderConflict(text, server=server, status=409)
    refused = _REFUSED_EXCEPTIONS.get(type(exc))
    if refused is not None:
        return ProviderRefused(text, server=server, status=refused, hint=_REFUSED_HINT)
    return ProviderError(text, server=server)


def _is_auth_exception(exc: Exception, text: str) -> bool:
    """python-ovh's credential exceptions; its ``Forbidden`` only when the message says so."""
    lowered = text.lower()
    if isinstance(exc, ovh.exceptions.Forbidden):
        return any(phrase in lowered for phrase in _AUTH_PHRASES)
    return isinstance(exc, _AUTH_EXCEPTIONS) or "invalid signature" in lowered


def exception_text(exc: BaseException) -> str:
    """``Class: args`` of an exception, following python-ovh's habits of wrapping the cause
    and of passing ``("format %s", value)`` as arguments."""
    args = exc.args
    if len(args) > 1 and isinstance(args[0], str) and "%s" in args[0]:
        try:
            args = (args[0] % args[1:],)
        except (TypeError, ValueError):
            args = exc.args
    parts = [str(arg) for arg in args if arg is not None and not isinstance(arg, Exception)]
    causes = [arg for arg in args if isinstance(arg, Exception)]
    parts += [f"{type(cause).__name__}: {cause}" for cause in causes]
    return f"{type(exc).__name__}: {'; '.join(parts) or 'no detail'}"


def decode_json(content: bytes | str | None) -> tuple[bool, Any]:
    """``(True, value)`` for a JSON body (an empty body is ``None``), else ``(False, None)``."""
    if content is None or not content.strip():
        return True, None
    try:
        return True, json.loads(content)
    except ValueError:
        return False, None


def body_message(body: Any) -> str:
    """The message of an error body: ``class``/``errorCode``, ``message``, ``details``."""
    if not isinstance(body, dict):
        return "(no message)" if body is None else clip(json.dumps(body))
    kind = body.get("class") or body.get("errorCode")
    message = body.get("message")
    parts = [str(part) for part in (kind, message) if part]
    details = body.get("details")
    if details:
        parts.append(f"details {clip(json.dumps(details, sort_keys=True))}")
    return ": ".join(parts[:2]) + "".join(f" ({part})" for part in parts[2:]) or "(no message)"


def non_json_summary(content: bytes | str | None, headers: Mapping[str, str]) -> str:
    """A short, log-safe description of a body that is not JSON (often an HTML error page)."""
    raw = content.decode("utf-8", "replace") if isinstance(content, bytes) else content or ""
    kind = headers.get("Content-Type") or "unknown type"
    title_start = raw.lower().find("<title>")
    if title_start >= 0:
        title_end = raw.lower().find("</title>", title_start)
        raw = raw[title_start + 7 : title_end if title_end > 0 else None]
    return f"non-JSON answer ({kind}): {clip(' '.join(raw.split()))}"


def clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
