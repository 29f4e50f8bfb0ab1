"""wrk's result, read from the one JSON line our Lua done() hook prints (see checks.load)."""

from __future__ import annotations

import json
from dataclasses import dataclass

MARKER = "TWINLAB_WRK "


class WrkOutputError(ValueError):
    """wrk printed no summary line (it failed before or during the run)."""


@dataclass(frozen=True)
class WrkResult:
    duration_s: float
    requests: int
    bytes_read: int
    socket_errors: int  # connect + read + write + timeout
    status_errors: int  # HTTP status > 399
    latency_mean_ms: float
    latency_max_ms: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.status_errors


def parse_wrk_output(stdout: str) -> WrkResult:
    """The summary of one wrk run; WrkOutputError quoting wrk's last words when there is none."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            ms = 1000.0
            return WrkResult(
                duration_s=data["duration_us"] / 1e6,
                requests=int(data["requests"]),
                bytes_read=int(data["bytes"]),
                socket_errors=sum(
                    int(data[f"errors_{kind}"]) for kind in ("connect", "read", "write", "timeout")
                ),
                status_errors=int(data["errors_status"]),
                latency_mean_ms=data["latency_mean_us"] / ms,
                latency_max_ms=data["latency_max_us"] / ms,
                latency_p50_ms=data["latency_p50_us"] / ms,
                latency_p90_ms=data["latency_p90_us"] / ms,
                latency_p99_ms=data["latency_p99_us"] / ms,
            )
    tail = " | ".join(stdout.strip().splitlines()[-3:]) or "no output"
    raise WrkOutputError(f"wrk printed no summary ({tail})")
