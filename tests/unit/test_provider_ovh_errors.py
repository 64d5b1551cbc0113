"""Classification of every python-ovh exception and every OVH error body into fleet.errors."""

from __future__ import annotations

import json

import ovh.exceptions
import pytest
import requests

from fleet.errors import (
    ProviderAuthError,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderRefused,
    ProviderTransient,
)
from fleet.provider.ovh_errors import (
    ApiTransient,
    body_message,
    error_from_exception,
    error_from_response,
)

QID = "EU.ext-3.6a1b2c3d.12345.0f0e0d0c0b0a"
ACTION = "GET /dedicated/server/ns1.example.net"


def make_response(
    status: int,
    body: object | bytes,
    *,
    content_type: str = "application/json; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """A real ``requests.Response`` as python-ovh receives it."""
    response = requests.Response()
    response.status_code = status
    response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response.headers["Content-Type"] = content_type
    response.headers["X-Ovh-QueryId"] = QID
    response.headers.update(headers or {})
    return response


LEGACY = {"errorCode": "INVALID_SIGNATURE", "httpCode": "400 Bad Request", "message": "Bad sig"}
CURRENT = {"class": "Client::BadRequest", "message": "Invalid body", "details": {"field": "x"}}
MESSAGE_ONLY = {"message": "The requested object (serviceName = ns1) does not exist"}
HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad</h1></body></html>"
NOT_SUPPORTED = "This operation is not supported for this server"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"errorCode": "INVALID_ARGUMENT", "message": "Bad bootId"}, ProviderRefused),
        (400, CURRENT, ProviderRefused),
        (401, MESSAGE_ONLY, ProviderAuthError),
        (403, {"errorCode": "INVALID_CREDENTIAL", "message": "bad ck"}, ProviderAuthError),
        (
            403,
            {"class": "Client::Forbidden", "message": "This call has not been granted"},
            ProviderAuthError,
        ),
        (
            403,
            {"errorCode": "FORBIDDEN", "message": "This call has not been granted"},
            ProviderAuthError,
        ),
        (
            400,
            {"errorCode": "INVALID_SIGNATURE", "message": "Invalid signature"},
            ProviderAuthError,
        ),
        (400, {"class": "Client::BadRequest", "message": "Invalid signature"}, ProviderAuthError),
        (400, {"message": "Invalid signature"}, ProviderAuthError),
        (400, {"errorCode": "QUERY_TIME_OUT", "message": "Query out of time"}, ProviderAuthError),
        (403, {"message": "This credential does not exist"}, ProviderAuthError),
        (403, {"message": "This application key is invalid"}, ProviderAuthError),
        # refused for good, not about credentials: OVH's own examples and what it answers
        (403, {"class": "Client::Forbidden", "message": NOT_SUPPORTED}, ProviderRefused),
        (403, {"errorCode": "FORBIDDEN", "message": NOT_SUPPORTED}, ProviderRefused),
        (403, {"message": NOT_SUPPORTED}, ProviderRefused),
        (403, {"message": "Hardware RAID is not supported by this server"}, ProviderRefused),
        (
            403,
            {
                "class": "Client::Forbidden::OperatingSystemLicenseMissing",
                "message": "Operating system windows2022 requires a license on server ns1",
            },
            ProviderRefused,
        ),
        (
            403,
            {
                "class": "Client::Forbidden::BadAccess",
                "message": "An internal error has occurred due to a wrong configuration",
            },
            ProviderRefused,
        ),
        (403, HTML, ProviderRefused),  # a proxy refusing us: not a credentials problem either
        (404, MESSAGE_ONLY, ProviderNotFound),
        (404, CURRENT, ProviderNotFound),
        (409, {"class": "Client::Conflict", "message": "task running"}, ProviderConflict),
        (
            409,
            {"class": "Client::Conflict::TaskAlreadyExists", "message": "Task 1 is running"},
            ProviderConflict,
        ),
        (
            409,
            {"class": "Client::Conflict::DisturbAlreadyExists", "message": "already locked"},
            ProviderConflict,
        ),
        (409, {"errorCode": "CONFLICT", "message": "task running"}, ProviderConflict),
        (
            409,
            {
                "class": "Client::Conflict::OperatingSystemIncompatible",
                "message": "Operating system x is not compatible for server ns1",
            },
            ProviderRefused,
        ),
        (
            409,
            {"class": "Client::Conflict::HardwareRaidIncompatibleOnServer", "message": "no"},
            ProviderRefused,
        ),
        (429, {"message": "Too many requests"}, ProviderTransient),
        (460, MESSAGE_ONLY, ProviderRefused),
        (500, {"class": "Server::InternalServerError", "message": "boom"}, ProviderTransient),
        (501, {"class": "Server::NotImplemented", "message": "not implemented"}, ProviderRefused),
        (501, {"errorCode": "NOT_IMPLEMENTED", "message": "not implemented"}, ProviderRefused),
        (503, LEGACY, ProviderTransient),
        (502, HTML, ProviderTransient),
        (418, b"I am a teapot, not JSON", ProviderTransient),
    ],
)
def test_error_from_response_classifies_by_status_and_body(
    status: int, body: object, expected: type[ProviderError]
) -> None:
    error = error_from_response(make_response(status, body), server="ns1", action=ACTION)
    assert type(error) is expected or (
        expected is ProviderTransient and type(error) is ApiTransient
    )
    assert error.status == status
    assert error.query_id == QID
    assert error.server == "ns1"
    assert str(error).startswith(f"ns1: {ACTION}: HTTP {status}")
    assert QID in str(error)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (LEGACY, "INVALID_SIGNATURE: Bad sig"),
        (CURRENT, 'Client::BadRequest: Invalid body (details {"field": "x"})'),
        (MESSAGE_ONLY, MESSAGE_ONLY["message"]),
        ({}, "(no message)"),
        (None, "(no message)"),
        (["odd"], '["odd"]'),
    ],
)
def test_body_message_reads_every_shape(body: object, expected: str) -> None:
    assert body_message(body) == expected


def test_html_page_is_summarised_by_its_title() -> None:
    error = error_from_response(
        make_response(502, HTML, content_type="text/html"), server="ns1", action=ACTION
    )
    assert "non-JSON answer (text/html): 502 Bad Gateway" in str(error)
    assert "<h1>" not in str(error)


def test_retry_after_of_a_429_is_kept() -> None:
    response = make_response(429, {"message": "slow down"}, headers={"Retry-After": "7"})
    error = error_from_response(response, server="ns1", action=ACTION)
    assert isinstance(error, ApiTransient)
    assert error.retry_after == 7.0


def test_a_500_without_retry_after_has_none() -> None:
    error = error_from_response(make_response(500, {"message": "x"}), server=None, action=ACTION)
    assert isinstance(error, ApiTransient)
    assert error.retry_after is None


def _raise_like_python_ovh(status: int, body: object) -> ovh.exceptions.APIError:
    """The exception python-ovh's ``Client.call`` raises for this answer."""
    response = make_response(status, body)
    message = body.get("message") if isinstance(body, dict) else None
    by_code = {
        "NOT_GRANTED_CALL": ovh.exceptions.NotGrantedCall,
        "NOT_CREDENTIAL": ovh.exceptions.NotCredential,
        "INVALID_KEY": ovh.exceptions.InvalidKey,
        "INVALID_CREDENTIAL": ovh.exceptions.InvalidCredential,
        "FORBIDDEN": ovh.exceptions.Forbidden,
    }
    by_status = {
        404: ovh.exceptions.ResourceNotFoundError,
        400: ovh.exceptions.BadParametersError,
        409: ovh.exceptions.ResourceConflictError,
        460: ovh.exceptions.ResourceExpiredError,
    }
    code = body.get("errorCode") if isinstance(body, dict) else None
    cls = by_code.get(str(code)) if status == 403 else by_status.get(status)
    return (cls or ovh.exceptions.APIError)(message, response=response)


@pytest.mark.parametrize(
    ("status", "body", "python_ovh_class", "expected"),
    [
        (
            403,
            {"errorCode": "NOT_GRANTED_CALL", "message": "m"},
            "NotGrantedCall",
            ProviderAuthError,
        ),
        (403, {"errorCode": "NOT_CREDENTIAL", "message": "m"}, "NotCredential", ProviderAuthError),
        (403, {"errorCode": "INVALID_KEY", "message": "m"}, "InvalidKey", ProviderAuthError),
        (
            403,
            {"errorCode": "INVALID_CREDENTIAL", "message": "m"},
            "InvalidCredential",
            ProviderAuthError,
        ),
        (403, {"errorCode": "FORBIDDEN", "message": NOT_SUPPORTED}, "Forbidden", ProviderRefused),
        (
            403,
            {"errorCode": "FORBIDDEN", "message": "This call has not been granted"},
            "Forbidden",
            ProviderAuthError,
        ),
        (
            403,
            {"class": "Client::Forbidden", "message": NOT_SUPPORTED},
            "APIError",
            ProviderRefused,
        ),
        (401, {"message": "You must login first"}, "APIError", ProviderAuthError),
        (404, MESSAGE_ONLY, "ResourceNotFoundError", ProviderNotFound),
        (400, CURRENT, "BadParametersError", ProviderRefused),
        (400, LEGACY, "BadParametersError", ProviderAuthError),
        (409, {"message": "busy"}, "ResourceConflictError", ProviderConflict),
        (460, {"message": "expired"}, "ResourceExpiredError", ProviderRefused),
        (501, {"message": "not implemented"}, "APIError", ProviderRefused),
        (429, {"message": "slow"}, "APIError", ProviderTransient),
        (500, LEGACY, "APIError", ProviderTransient),
    ],
)
def test_every_python_ovh_api_error_maps(
    status: int, body: object, python_ovh_class: str, expected: type[ProviderError]
) -> None:
    exc = _raise_like_python_ovh(status, body)
    assert type(exc).__name__ == python_ovh_class
    error = error_from_exception(exc, server="ns1", action=ACTION)
    assert isinstance(error, expected)
    assert type(error) in (expected, ApiTransient)
    assert error.query_id == QID == exc.query_id
    assert error.status == status


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ovh.exceptions.HTTPError("Low HTTP request failed error", OSError("reset")), ApiTransient),
        (
            ovh.exceptions.InvalidResponse("Failed to decode API response", ValueError("x")),
            ApiTransient,
        ),
        (ovh.exceptions.NetworkError(), ApiTransient),
        (requests.ConnectionError("refused"), ApiTransient),
        (requests.Timeout("read timed out"), ApiTransient),
        (ovh.exceptions.InvalidKey("Invalid ApplicationSecret 'None'"), ProviderAuthError),
        (ovh.exceptions.InvalidCredential("bad"), ProviderAuthError),
        (ovh.exceptions.NotCredential("bad"), ProviderAuthError),
        (ovh.exceptions.Forbidden("This call has not been granted"), ProviderAuthError),
        (ovh.exceptions.Forbidden(NOT_SUPPORTED), ProviderRefused),
        (ovh.exceptions.NotGrantedCall("bad"), ProviderAuthError),
        (ovh.exceptions.ResourceNotFoundError("gone"), ProviderNotFound),
        (ovh.exceptions.ResourceConflictError("busy"), ProviderConflict),
        (ovh.exceptions.BadParametersError("bad"), ProviderRefused),
        (ovh.exceptions.BadParametersError("Invalid signature"), ProviderAuthError),
        (ovh.exceptions.APIError("plain"), ProviderError),
        (ovh.exceptions.ResourceExpiredError("expired"), ProviderRefused),
    ],
)
def test_exceptions_without_a_response_map_by_class(
    exc: Exception, expected: type[ProviderError]
) -> None:
    error = error_from_exception(exc, server="ns1", action=ACTION)
    assert type(error) is expected
    assert error.server == "ns1"
    assert str(error).startswith(f"ns1: {ACTION}: {type(exc).__name__}")


def test_wrapped_cause_is_named() -> None:
    exc = ovh.exceptions.HTTPError("Low HTTP request failed error", OSError("connection reset"))
    error = error_from_exception(exc, server=None, action=ACTION)
    assert "OSError: connection reset" in str(error)


@pytest.mark.parametrize(
    "body",
    [
        {"class": "Client::Forbidden", "message": NOT_SUPPORTED},
        {"errorCode": "FORBIDDEN", "httpCode": "403 Forbidden", "message": NOT_SUPPORTED},
        {"message": NOT_SUPPORTED},
    ],
)
def test_a_403_not_about_credentials_says_what_ovh_said(body: object) -> None:
    """Not "check your credentials": OVH's message, query id, and that retrying cannot help."""
    error = error_from_response(make_response(403, body), server="ns1", action=ACTION)
    assert isinstance(error, ProviderRefused)
    assert NOT_SUPPORTED in str(error) and QID in str(error)
    assert error.hint and "credential" not in error.hint and "retrying cannot help" in error.hint


def test_refused_and_not_found_are_payload_kinds_not_transient() -> None:
    """The executor fails a host once on ProviderRefused (404 included), retries transients."""
    assert issubclass(ProviderNotFound, ProviderRefused)
    for cls in (ProviderRefused, ProviderNotFound):
        assert not issubclass(cls, (ProviderTransient, ProviderConflict, ProviderAuthError))
