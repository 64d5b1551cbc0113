"""Keys and signatures of the fake OVH API, checked exactly as OVH checks them.

``X-Ovh-Signature`` is ``"$1$" + sha1(secret + consumer key + method + full URL + body +
timestamp)``; authentication errors always use the legacy body shape with the ``errorCode``
python-ovh maps to its exceptions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleet.sandbox.ovh_http import Response, http_code, json_response

if TYPE_CHECKING:
    import random
    from email.message import Message


@dataclass(frozen=True)
class Credentials:
    """An application key and secret, and a consumer key of that application."""

    application_key: str
    application_secret: str
    consumer_key: str

    @classmethod
    def generate(cls, rng: random.Random | None = None) -> Credentials:
        """Fresh random keys, as long as OVH's (16, 32 and 32 characters)."""
        alphabet = string.ascii_letters + string.digits

        def token(size: int) -> str:
            if rng is None:
                return "".join(secrets.choice(alphabet) for _ in range(size))
            return "".join(rng.choice(alphabet) for _ in range(size))

        return cls(token(16), token(32), token(32))


def signature(secret: str, consumer_key: str, method: str, url: str, body: str, ts: str) -> str:
    """OVH's request signature."""
    text = "+".join([secret, consumer_key, method.upper(), url, body, ts])
    return "$1$" + hashlib.sha1(text.encode("utf-8")).hexdigest()


class AuthError(Exception):
    """An authentication failure; always rendered in the legacy shape OVH uses for them."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        if self.code is None:
            return json_response(self.status, {"message": self.message})
        body = {
            "errorCode": self.code,
            "httpCode": http_code(self.status),
            "message": self.message,
        }
        return json_response(self.status, body)


class Keyring:
    """Known applications (key -> secret) and consumer keys (key -> application key)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}
        self._consumers: dict[str, str] = {}

    def add(self, credentials: Credentials) -> None:
        with self._lock:
            self._secrets[credentials.application_key] = credentials.application_secret
            self._consumers[credentials.consumer_key] = credentials.application_key

    def verify(
        self, method: str, url: str, body: str, headers: Message, now: int, skew: int
    ) -> str:
        """The consumer key of a correctly signed request, else :class:`AuthError`."""
        app_key = headers.get("X-Ovh-Application")
        consumer = headers.get("X-Ovh-Consumer")
        if not app_key or not consumer:
            raise AuthError(401, None, "You must login first")
        with self._lock:
            secret = self._secrets.get(app_key)
            owner = self._consumers.get(consumer)
        if secret is None:
            raise AuthError(403, "INVALID_KEY", "This application key is invalid")
        if owner != app_key:
            raise AuthError(403, "INVALID_CREDENTIAL", "This credential does not exist")
        stamp = headers.get("X-Ovh-Timestamp", "")
        if not stamp.isdigit() or abs(int(stamp) - now) > skew:
            raise AuthError(400, "QUERY_TIME_OUT", "Query out of time")
        expected = signature(secret, consumer, method, url, body, stamp)
        if not hmac.compare_digest(expected, headers.get("X-Ovh-Signature", "")):
            raise AuthError(400, "INVALID_SIGNATURE", "Invalid signature")
        return consumer


#: A route: (path parameters, query parameters, JSON body) -> JSON answer.
