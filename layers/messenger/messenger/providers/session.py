"""Shared HTTP plumbing of the provider clients: a pooled Session, error scrubbing, connection failure triage."""

from __future__ import annotations

import logging
import re

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NameResolutionError, NewConnectionError

DEFAULT_TIMEOUT = (3.05, 10.0)  # (connect, read) seconds
_SECRET_PARAMS = re.compile(r"(access_token|appsecret_proof)=[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]+")


def scrub(text: str) -> str:
    """Remove tokens from a text that may quote a URL or a header."""
    return _BEARER.sub(r"\1[redacted]", _SECRET_PARAMS.sub(r"\1=[redacted]", text))


class _ScrubFilter(logging.Filter):
    """urllib3 logs request lines (with the query string) at DEBUG: redact them if anyone turns that on."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_ScrubFilter())


def pooled_session(pool_size: int = 32) -> requests.Session:
    """One Session per client: keep-alive connections shared by the worker threads (no retries here)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def failed_before_sending(exc: requests.RequestException) -> bool:
    """True if the request certainly never reached the server (DNS, refused, connect timeout, TLS)."""
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError):
        return True
    if isinstance(exc, requests.ReadTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        return isinstance(reason, NewConnectionError | NameResolutionError | ConnectTimeoutError)
    return False
