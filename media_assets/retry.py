"""Which errors are worth another try, and the one backoff policy for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential_jitter

T = TypeVar("T")
TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
# Error classes (as recorded on failed records and dead letters) worth another try later.
# A DNS failure is one: resolvers have outages, and a page must not leave the index for one.
TRANSIENT_CLASSES = frozenset({"http_transient", "timeout", "network", "robots_unavailable", "dns"})


def classify_http(status: int) -> str:
    return "http_transient" if status in TRANSIENT_HTTP else "http_client_error"


def is_transient(exc: BaseException) -> bool:
    """Timeouts, dropped connections, throttling and 5xx: the same call may succeed later."""
    # Imported here, on the error path: they cost every process start-up a quarter second.
    import httpx
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        meta = exc.response.get("ResponseMetadata", {})
        code = exc.response.get("Error", {}).get("Code", "")
        return meta.get("HTTPStatusCode", 0) in TRANSIENT_HTTP or code in {
            "SlowDown",
            "RequestTimeout",
            "InternalError",
            "ServiceUnavailable",
            "Throttling",
        }
    if isinstance(exc, BotoCoreError):  # endpoint unreachable, connection closed, read timeout
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in TRANSIENT_HTTP
    status = getattr(exc, "status_code", None)  # API SDK errors (cohere's ApiError, …)
    if isinstance(status, int):
        return status in TRANSIENT_HTTP
    return isinstance(exc, httpx.TransportError | ConnectionError | TimeoutError)


def with_retries(
    max_seconds: float = 60.0,
    initial: float = 0.5,
    maximum: float = 8.0,
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Exponential backoff with jitter on transient errors, for at most ``max_seconds``; any
    other error is raised at once."""
    return retry(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(initial=initial, max=maximum),
        stop=stop_after_delay(max_seconds),
        reraise=True,
    )
