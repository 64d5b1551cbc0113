"""HTTP plumbing of the fake OVH API: a threading server on loopback, its answers and OVH's
error body shapes.

OVH has served errors in more than one shape over time: current ``{class, message, details}``,
legacy ``{errorCode, httpCode, message}`` and message only; :func:`error_body` writes each.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal, Protocol

from fleet.sandbox.ovh_checks import Json

if TYPE_CHECKING:
    from email.message import Message

log = logging.getLogger(__name__)

ErrorShape = Literal["class", "legacy", "message"]

_DEFAULT_CLASSES = {
    400: "Client::BadRequest",
    401: "Client::Unauthorized",
    403: "Client::Forbidden",
    404: "Client::NotFound",
    405: "Client::MethodNotAllowed",
    409: "Client::Conflict",
    429: "Client::TooManyRequests",
    500: "Server::InternalServerError",
    501: "Server::NotImplemented",
}
_LEGACY_CODES = {
    400: "BAD_REQUEST",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    501: "NOT_IMPLEMENTED",
}
PROXY_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def error_body(
    shape: ErrorShape,
    status: int,
    message: str,
    error_class: str | None = None,
    details: dict[str, str] | None = None,
) -> Json:
    """An OVH error body in one of the shapes OVH has served over time."""
    if shape == "legacy":
        code = _LEGACY_CODES.get(status, "CLIENT_ERROR" if status < 500 else "SERVER_ERROR")
        return {"errorCode": code, "httpCode": http_code(status), "message": message}
    if shape == "message":
        return {"message": message}
    default = _DEFAULT_CLASSES.get(status, "Client::Error" if status < 500 else "Server::Error")
    return {"class": error_class or default, "message": message, "details": details or {}}


def http_code(status: int) -> str:
    return f"{status} {phrase(status)}"


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, **headers: str) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"), headers=headers)


class Responder(Protocol):
    """What answers the requests the server reads (the fake API)."""

    def respond(self, method: str, raw_path: str, headers: Message, body: str) -> Response: ...


class HttpServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its fake and can drop its open connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: Responder) -> None:
        self.app = app
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request (killed, as the crash tests do) is no error of
        the fake's: log it quietly; anything else as the standard library does."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("client %s dropped its connection", client_address)
            return
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        with self.connections_lock:
            conns, self.connections = list(self.connections), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                log.debug("connection already closed")


class RequestHandler(BaseHTTPRequestHandler):
    """Reads one request, lets the fake answer it, writes the answer (keep-alive)."""

    protocol_version = "HTTP/1.1"
    timeout = 60
    # One buffered write per answer and no Nagle: headers and body written apart would meet the
    # client's delayed ACK and cost about 40 ms a request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: HttpServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        response = self.server.app.respond(method, self.path, self.headers, body)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("fake OVH API: %s", format % args)
