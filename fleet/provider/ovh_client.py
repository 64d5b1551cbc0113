"""Building the ``ovh.Client``: credentials lookup (python-ovh's) and named endpoints.

python-ovh takes endpoint *names* only; the sandbox (or any other URL) is reached by registering
its URL under a name in ``ovh.client.ENDPOINTS``. python-ovh's own names are never redirected.
"""

from __future__ import annotations

import hashlib
import threading

import ovh
import ovh.client
import ovh.exceptions

from fleet.errors import ConfigError
from fleet.provider.ovh_errors import exception_text

#: Name under which :func:`build_client` registers a sandbox URL by default.
SANDBOX_ENDPOINT = "fleet-sandbox"
#: python-ovh's own endpoint names: never redirected to another URL.
_BUILTIN_ENDPOINTS = dict(ovh.client.ENDPOINTS)
#: Guards ``ovh.client.ENDPOINTS`` while a name is registered and a client built from it.
_ENDPOINTS_LOCK = threading.Lock()
#: Keyword arguments of :func:`build_client` passed on to ``ovh.Client``.
_CLIENT_KEYS = frozenset({"application_key", "application_secret", "consumer_key"})


def build_client(
    endpoint: str | None = None,
    *,
    endpoint_url: str | None = None,
    config_file: str | None = None,
    timeout: float = 60.0,
    **keys: str | None,
) -> ovh.Client:
    """An ``ovh.Client`` from explicit arguments, else ``OVH_*`` environment, else ``ovh.conf``.

    python-ovh does the lookup; this only passes values through. ``endpoint_url`` registers
    ``endpoint`` as a named endpoint in ``ovh.client.ENDPOINTS`` (how the sandbox is reached: the
    client takes names only); python-ovh's own names are never redirected. ``keys`` are
    ``application_key``, ``application_secret`` and ``consumer_key``.
    """
    unknown = sorted(set(keys) - _CLIENT_KEYS)
    if unknown:
        raise ConfigError(f"unknown OVH client setting(s): {', '.join(unknown)}")
    if endpoint_url is not None:
        _check_registration(endpoint, endpoint_url)
    with _ENDPOINTS_LOCK:
        if endpoint is not None and endpoint_url is not None:
            ovh.client.ENDPOINTS[endpoint] = endpoint_url.rstrip("/")
        try:
            return ovh.Client(endpoint=endpoint, config_file=config_file, timeout=timeout, **keys)
        except (ovh.exceptions.InvalidRegion, ovh.exceptions.InvalidConfiguration) as exc:
            raise ConfigError(
                f"OVH client settings: {exception_text(exc)}",
                hint="give endpoint and keys, set OVH_ENDPOINT/OVH_APPLICATION_KEY/"
                "OVH_APPLICATION_SECRET/OVH_CONSUMER_KEY, or write ovh.conf",
            ) from exc


def _check_registration(endpoint: str | None, endpoint_url: str) -> None:
    """Refuse to register a URL without a name, or to redirect one of python-ovh's names."""
    if not endpoint:
        raise ConfigError(f"endpoint_url {endpoint_url} needs an endpoint name to register it")
    builtin = _BUILTIN_ENDPOINTS.get(endpoint)
    if builtin is not None and builtin != endpoint_url.rstrip("/"):
        raise ConfigError(
            f"endpoint {endpoint} is python-ovh's ({builtin}); register {endpoint_url} "
            f"under another name such as {SANDBOX_ENDPOINT}"
        )
    if not endpoint_url.startswith(("http://", "https://")):
        raise ConfigError(f"endpoint_url {endpoint_url} is not an http(s) URL")


def pacing_key(client: ovh.Client) -> str:
    """Who OVH counts calls against: the endpoint and a digest of the application and consumer
    keys (never the keys themselves), the name of the bucket every process of that key shares."""
    endpoint = str(getattr(client, "_endpoint", ""))
    keys = f"{getattr(client, '_application_key', '')}\0{getattr(client, '_consumer_key', '')}"
    digest = hashlib.sha256(keys.encode()).hexdigest()[:24]
    return f"{endpoint}|{digest}"
