"""POSTing JSON over HTTP with a timeout and bounded retries, for sinks.

The standard library's ``urllib`` is enough here: alerts are edges, a few
per minute, so connection reuse buys nothing, and no extra dependency is
needed. ``urllib`` also honours the usual ``HTTPS_PROXY`` variables.

Server errors (5xx), 408, 429 and network failures are retried; any other
answer outside 2xx is a rejection that another attempt cannot fix. Error
messages name the URL without its password and the status, never the
request's headers or body, which may carry secrets.
"""

from __future__ import annotations

import base64
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from engine import __version__
from engine.clock import Clock
from engine.connectors import redact_url
from engine.errors import UsageError
from engine.retry import PermanentError, RetryPolicy

log = logging.getLogger(__name__)

RETRIED_STATUS = frozenset({408, 429})
USER_AGENT = f"burst-engine/{__version__}"

#: Options for extra request headers, for a sink's ``options_schema``.
HEADER_OPTIONS: dict[str, Any] = {
    "headers": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "extra request headers",
    },
    "headers_from_env": {
        "type": "object",
        "additionalProperties": {"type": "string", "minLength": 1},
        "description": "header name -> environment variable holding its value "
        "(for secrets such as Authorization)",
    },
}


class DeliveryError(Exception):
    """A POST that failed; the message is safe to log."""


def env_secret(name: str, where: str, option: str) -> str:
    """The value of environment variable ``name``; a clear error when unset.

    The message names the variable, never its value.
    """
    value = os.environ.get(name)
    if not value:
        raise UsageError(f"{where}: environment variable {name} ({option}) is not set")
    return value


def request_headers(options: Mapping[str, Any], where: str) -> dict[str, str]:
    """The fixed headers of every request: JSON, user agent, and the
    ``headers`` and ``headers_from_env`` options."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    headers.update(options.get("headers", {}))
    for header, variable in options.get("headers_from_env", {}).items():
        headers[header] = env_secret(variable, where, f"headers_from_env.{header}")
    return headers


def split_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without ``user:password@``, and those as a Basic
    ``Authorization`` header value (urllib does not send them itself)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), f"Basic {token}"


class JsonPoster:
    """POSTs bodies to one URL under a retry policy."""

    def __init__(
        self,
        url: str,
        policy: RetryPolicy,
        clock: Clock,
        headers: Mapping[str, str],
        name: str,
    ) -> None:
        self.url, credentials = split_credentials(url)
        self.shown_url = redact_url(url)
        self.policy = policy
        self.clock = clock
        self.headers = dict(headers)
        if credentials is not None and "Authorization" not in self.headers:
            self.headers["Authorization"] = credentials
        self.name = name

    def post(self, body: bytes, headers: Mapping[str, str] | None = None) -> int:
        """POST ``body``; return the status, or raise :class:`DeliveryError`
        after the last attempt."""
        merged = {**self.headers, **(headers or {})}
        try:
            return self.policy.call(
                lambda: self._attempt(body, merged), self.clock, self._retrying
            )
        except PermanentError as error:
            raise DeliveryError(str(error)) from None
        except DeliveryError:
            raise
        except Exception as error:  # pragma: no cover - _attempt wraps them all
            raise DeliveryError(f"POST {self.shown_url}: {error}") from None

    def _attempt(self, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(
            self.url, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self.policy.timeout_s
            ) as reply:
                status: int = reply.status
                return status
        except urllib.error.HTTPError as error:
            message = f"POST {self.shown_url}: HTTP {error.code} {error.reason}"
            error.close()
            if error.code >= 500 or error.code in RETRIED_STATUS:
                raise DeliveryError(message) from None
            raise PermanentError(message) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DeliveryError(f"POST {self.shown_url}: {reason}") from None

    def _retrying(self, failures: int, error: Exception) -> None:
        log.debug("%s: attempt %d failed (%s); retrying", self.name, failures, error)
