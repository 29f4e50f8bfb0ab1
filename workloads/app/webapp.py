"""twinlab-webapp: a small WSGI service with static, CPU-bound and fsync-bound endpoints.

Stdlib only, so the same file runs under Debian's gunicorn in the container and in the VM.
Every endpoint is GET; bad parameters answer 400 with a message that names the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from urllib.parse import parse_qs

APP_NAME = "twinlab-webapp"
APP_DIR = Path(__file__).resolve().parent
VERSION = (APP_DIR / "VERSION").read_text(encoding="ascii").strip()
STATIC_PAGE = (APP_DIR / "static" / "index.html").read_bytes()
DEFAULT_DATA_DIR = "/var/lib/twinlab"

CPU_ROUNDS_MAX = 100_000
IO_KIB_MAX = 16_384
# One fixed buffer for /cpu: identical work on every call and every deployment.
CPU_BUFFER = bytes(range(256)) * 16
IO_CHUNK = b"twinlab-io-chunk" * 4096  # 64 KiB

StartResponse = Callable[[str, list[tuple[str, str]]], object]
Environ = Mapping[str, object]


class BadRequest(Exception):
    """A client error: the message goes back to the client as a 400."""


def cpu_digest(rounds: int) -> str:
    """Chain `rounds` sha256 computations over CPU_BUFFER; the result is deterministic."""
    digest = b""
    for _ in range(rounds):
        digest = hashlib.sha256(CPU_BUFFER + digest).digest()
    return digest.hex()


def write_and_fsync(data_dir: Path, kib: int) -> tuple[float, float]:
    """Write `kib` KiB to a fresh file in data_dir, fsync it, remove it.

    Returns (write_s, fsync_s).
    """
    fd, name = tempfile.mkstemp(prefix="io-", dir=data_dir)
    try:
        started = time.perf_counter()
        remaining = kib * 1024
        while remaining > 0:
            remaining -= os.write(fd, IO_CHUNK[: min(remaining, len(IO_CHUNK))])
        written = time.perf_counter()
        os.fsync(fd)
        synced = time.perf_counter()
    finally:
        os.close(fd)
        os.unlink(name)
    return written - started, synced - written


def int_param(query: dict[str, list[str]], name: str, low: int, high: int) -> int:
    """The single integer parameter `name`, within [low, high], else BadRequest."""
    values = query.get(name)
    hint = f"{name} must be an integer from {low} to {high}, e.g. ?{name}={low}"
    if not values:
        raise BadRequest(f"missing parameter {name}: {hint}")
    if len(values) > 1:
        raise BadRequest(f"parameter {name} given {len(values)} times: {hint}")
    try:
        value = int(values[0])
    except ValueError:
        raise BadRequest(f"parameter {name}={values[0]!r} is not an integer: {hint}") from None
    if not low <= value <= high:
        raise BadRequest(f"parameter {name}={value} is out of range: {hint}")
    return value


def info() -> dict[str, object]:
    return {
        "app": APP_NAME,
        "version": VERSION,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
    }


Response = tuple[str, str, bytes]  # status, content type, body


def text(status: str, body: str) -> Response:
    return status, "text/plain; charset=utf-8", (body + "\n").encode()


def as_json(payload: dict[str, object]) -> Response:
    return "200 OK", "application/json", json.dumps(payload).encode()


def route(path: str, query: dict[str, list[str]], data_dir: Path) -> Response:
    """Answer one GET request; raises BadRequest for bad parameters."""
    if path == "/healthz":
        return text("200 OK", "ok")
    if path == "/static":
        return "200 OK", "text/html; charset=utf-8", STATIC_PAGE
    if path == "/cpu":
        n = int_param(query, "n", 1, CPU_ROUNDS_MAX)
        return as_json({"n": n, "digest": cpu_digest(n)})
    if path == "/io":
        kib = int_param(query, "kib", 1, IO_KIB_MAX)
        try:
            write_s, fsync_s = write_and_fsync(data_dir, kib)
        except OSError as error:
            return text(
                "503 Service Unavailable",
                f"cannot write to data dir {data_dir} ({error.strerror}): "
                "set TWINLAB_DATA_DIR to a directory the app user can write",
            )
        return as_json({"kib": kib, "write_s": write_s, "fsync_s": fsync_s})
    if path == "/info":
        return as_json(info())
    return text("404 Not Found", f"no such endpoint {path}: try /healthz /static /cpu /io /info")


def application(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI entry point (gunicorn webapp:application)."""
    method = str(environ.get("REQUEST_METHOD", "GET"))
    extra_headers: list[tuple[str, str]] = []
    if method not in ("GET", "HEAD"):
        status, content_type, body = text(
            "405 Method Not Allowed", f"{method} not allowed: use GET"
        )
        extra_headers.append(("Allow", "GET, HEAD"))
    else:
        path = str(environ.get("PATH_INFO", "")) or "/"
        query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
        data_dir = Path(os.environ.get("TWINLAB_DATA_DIR", DEFAULT_DATA_DIR))
        try:
            status, content_type, body = route(path, query, data_dir)
        except BadRequest as error:
            status, content_type, body = text("400 Bad Request", str(error))
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    start_response(status, headers + extra_headers)
    return [body]
