"""The one wait for an instance's first HTTP 200: used by `pulumi up` (components/readiness.py),
by the resource checks on clones (R1, R4) and by the tests. Each attempt is a GET from this
machine, or one given by the caller (`pulumi up` on a remote host: through its SSH,
components/http_over_ssh.py)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

POLL_INTERVAL_S = 0.05
# One attempt may hang while a guest's NIC is not up yet (QEMU user networking accepts the
# connection and waits for the guest); this bounds it.
ATTEMPT_TIMEOUT_S = 1.0


# One attempt: (url, timeout_s) -> the HTTP status; OSError when nothing answers.
Attempt = Callable[[str, float], int]


def http_status(url: str, timeout_s: float) -> int:
    """A GET from this machine."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@dataclass
class WaitResult:
    seconds: float | None  # since `started`; None: no 200 in time
    attempts: int
    last_error: str


def wait_for_http_200(
    url: str,
    started: float,
    timeout_s: float,
    on_attempt: Callable[[float, str], None] | None = None,
    attempt: Attempt = http_status,
) -> WaitResult:
    """Poll `url` every 50 ms until it answers 200 or `timeout_s` past `started` (monotonic)."""
    attempts, last_error = 0, "no attempt"
    while True:
        remaining = started + timeout_s - time.monotonic()
        if remaining <= 0:
            return WaitResult(None, attempts, last_error)
        attempts += 1
        try:
            status = attempt(url, min(ATTEMPT_TIMEOUT_S, remaining))
            if status == 200:
                return WaitResult(time.monotonic() - started, attempts, "")
            last_error = f"HTTP {status}"
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            last_error = type(reason).__name__ if not str(reason) else str(reason)
        if on_attempt is not None:
            on_attempt(time.monotonic() - started, last_error)
        time.sleep(POLL_INTERVAL_S)


def require_http_200(url: str, timeout_s: float, attempt: Attempt = http_status) -> float:
    """Seconds until `url` answered 200; TimeoutError naming the URL and the last answer."""
    result = wait_for_http_200(url, time.monotonic(), timeout_s, attempt=attempt)
    if result.seconds is None:
        raise TimeoutError(
            f"{url} gave no HTTP 200 within {timeout_s:.0f} s (last: {result.last_error})"
        )
    return result.seconds
