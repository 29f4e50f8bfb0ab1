"""The passive start-up marks R1's stages are read from (pure functions, tested on captured text).

- The app's listening mark (workloads/app/gunicorn_conf.py): a stderr line with the wall clock
  at which gunicorn's sockets listen; in `docker logs` for a container, on the serial console
  for a VM.
- The VM's initramfs stage lines (workloads/images/guest/initramfs-init): "twinlab-stage: NAME
  uptime SECONDS s" on the serial console, NAME initramfs (its /init starts) or init (it
  hands over to systemd).
- Docker's multiplexed log stream (8-byte frame headers) and its RFC 3339 timestamps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from workloads.app.gunicorn_conf import LISTENING_MARK

_LISTENING = re.compile(re.escape(LISTENING_MARK) + r" ([0-9]+(?:\.[0-9]+)?) s")
_STAGE = re.compile(r"twinlab-stage: ([a-z_]+) uptime ([0-9]+(?:\.[0-9]+)?) s")
_FRAME_HEADER_BYTES = 8
# Docker's timestamps carry nanoseconds; Python's datetime keeps microseconds.
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True)
class GuestStage:
    name: str
    uptime_s: float  # the guest kernel's uptime when the line was written


def listening_wall_clock(line: str) -> float | None:
    """The wall clock (s since the epoch) of the app's listening mark in `line`, else None."""
    found = _LISTENING.search(line)
    return float(found.group(1)) if found else None


def guest_stage(line: str) -> GuestStage | None:
    """The initramfs stage line in `line` (anywhere in it: the console may prefix it), else None."""
    found = _STAGE.search(line)
    return GuestStage(found.group(1), float(found.group(2))) if found else None


def split_log_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Payloads of the complete frames of Docker's multiplexed log stream (header: stream type,
    3 zero bytes, 4-byte big-endian length), and the incomplete rest to read more onto."""
    payloads = []
    while len(buffer) >= _FRAME_HEADER_BYTES:
        size = int.from_bytes(buffer[4:_FRAME_HEADER_BYTES], "big")
        end = _FRAME_HEADER_BYTES + size
        if len(buffer) < end:
            break
        payloads.append(buffer[_FRAME_HEADER_BYTES:end])
        buffer = buffer[end:]
    return payloads, buffer


def docker_time(stamp: str) -> float:
    """Seconds since the epoch of a Docker RFC 3339 time ("2026-11-30T14:35:24.949528887Z");
    ValueError for anything else (e.g. the zero time of a container never started)."""
    found = _RFC3339.match(stamp.strip())
    if not found:
        raise ValueError(f"not an RFC 3339 time: {stamp!r}")
    whole, fraction, zone = found.groups()
    parsed = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    if parsed.year < 1971:
        raise ValueError(f"time {stamp!r} is unset (the container never started)")
    return parsed.timestamp() + (float("0." + fraction) if fraction else 0.0)
