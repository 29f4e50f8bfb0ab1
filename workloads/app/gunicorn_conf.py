"""gunicorn settings shared by the container and the VM (gunicorn -c gunicorn_conf.py).

Both deployments run the same command line with the same environment; only
TWINLAB_WORKERS (default 2) is read here.
"""

from __future__ import annotations

import os
import socket
import sys
import time

WORKERS_MAX = 64
# The app's own "listening" mark, on stderr: docker logs shows it for a container, and the VM's
# unit sends stderr to the serial console, where the host stamps each line as it arrives.
# R1's start stages read it afterwards, so no poller has to be the observer of "listening".
LISTENING_MARK = "twinlab-webapp: listening at wall clock"


def workers_from_env(raw: str | None) -> int:
    """TWINLAB_WORKERS as a worker count, or exit with a message that names the fix."""
    if raw is None or raw == "":
        return 2
    if raw.isdigit() and 1 <= int(raw) <= WORKERS_MAX:
        return int(raw)
    sys.exit(f"TWINLAB_WORKERS={raw!r} is invalid: set it to an integer from 1 to {WORKERS_MAX}")


bind = ["0.0.0.0:8080"]
workers = workers_from_env(os.environ.get("TWINLAB_WORKERS"))
worker_class = "sync"
# Import the app once in the master: workers start faster (it matters under emulation).
preload_app = True
# Heartbeat files on tmpfs, not on the (possibly slow, emulated) disk.
worker_tmp_dir = "/dev/shm"
accesslog = "-"
# Error log and access log both on stdout: docker logs and journald read stdout.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stdout",
        }
    },
    "formatters": {"plain": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"}},
}


def listening_mark(wall_clock_s: float) -> str:
    """The line when_ready writes: LISTENING_MARK and the wall clock in seconds."""
    return f"{LISTENING_MARK} {wall_clock_s:.6f} s"


def when_ready(server: object) -> None:
    """The sockets are bound and listening (gunicorn calls this before it forks the workers):
    write the listening mark, then tell systemd (Type=notify in the VM; no-op in the container).

    The VM orders sshd and the rest after the app, so "ready" must mean bound to its port.
    """
    print(listening_mark(time.time()), file=sys.stderr, flush=True)
    notify_socket = os.environ.get("NOTIFY_SOCKET", "")
    if not notify_socket:
        return
    address = "\0" + notify_socket[1:] if notify_socket.startswith("@") else notify_socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.connect(address)
        notify.sendall(b"READY=1")
