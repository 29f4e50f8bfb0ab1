"""gunicorn settings shared by the container and the VM (gunicorn -c gunicorn_conf.py).

Both deployments run the same command line with the same environment; only
TWINLAB_WORKERS (default 2) is read here.
"""

from __future__ import annotations

import os
import socket
import sys

WORKERS_MAX = 64


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


def when_ready(server: object) -> None:
    """Tell systemd the app is listening (Type=notify in the VM); a no-op in the container.

    The VM orders sshd and the rest after the app, so "ready" must mean bound to its port.
    """
    notify_socket = os.environ.get("NOTIFY_SOCKET", "")
    if not notify_socket:
        return
    address = "\0" + notify_socket[1:] if notify_socket.startswith("@") else notify_socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.connect(address)
        notify.sendall(b"READY=1")
