"""The container's PIDs limit (CIS Docker Benchmark v1.6.0 5.29), set as part of `pulumi up`.

pulumi-docker 4.0.0 has no pids_limit argument, so this dynamic resource applies it right after
the container is created, with `docker update --pids-limit` against the same daemon (through
the same SSH options for ssh:// hosts), and reads it back from `docker inspect`. Replacing the
container (a new instance id) applies it again.

A runtime without an `update` command (Debian's runsc 20221219: "Subcommands for internal use
only") makes `docker update` fail; then the limit is written where the kernel enforces it, the
pids.max of the container's cgroup on the Docker host (v1 or v2), and read back from there.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from components.remote_ssh import remote_command, ssh_client_options, ssh_endpoint

# Plenty for gunicorn's workers and their threads; a fork bomb stops here, not at the host's
# pid_max.
PIDS_LIMIT = 512
TIMEOUT_S = 60


def docker_argv(docker_host: str, key_path: str | None, *args: str) -> list[str]:
    """The docker CLI command `args` against `docker_host` (ssh:// runs the remote CLI)."""
    if docker_host.startswith("ssh://"):
        endpoint = ssh_endpoint(docker_host).destination_args()
        return ["ssh", *ssh_client_options(key_path), *endpoint, remote_command("docker", *args)]
    return ["docker", "-H", docker_host, *args]


# Run on the Docker host: the container's pids.max from its init process's cgroup (v1: the
# pids controller's line; v2: the unified "0::" line), set to $1, then printed.
CGROUP_PIDS_MAX = r"""
pid=$(docker inspect --format '{{.State.Pid}}' "$2") || exit 1
path=$(awk -F: '$2 == "pids" { print "/sys/fs/cgroup/pids" $3 }' /proc/"$pid"/cgroup)
[ -n "$path" ] || path=$(awk -F: '$1 == "0" { print "/sys/fs/cgroup" $3 }' /proc/"$pid"/cgroup)
echo "$1" > "$path/pids.max" && cat "$path/pids.max"
"""


def host_shell_argv(docker_host: str, key_path: str | None, script: str, *args: str) -> list[str]:
    """`sh -c script args` on the Docker host itself (here, or over the same SSH)."""
    command = ["sh", "-c", script, "sh", *args]
    if docker_host.startswith("ssh://"):
        endpoint = ssh_endpoint(docker_host).destination_args()
        return ["ssh", *ssh_client_options(key_path), *endpoint, remote_command(*command)]
    if docker_host.startswith("unix://"):
        return command
    raise RuntimeError(f"cannot reach the cgroup files of {docker_host} (only unix:// and ssh://)")


def apply_pids_limit(docker_host: str, key_path: str | None, container: str, limit: int) -> int:
    """Set the limit and return what is in force; RuntimeError naming the container."""
    try:
        return _docker_update(docker_host, key_path, container, limit)
    except RuntimeError as refused:
        if "internal use only" not in str(refused):  # only a runtime without `update`
            raise
    done = subprocess.run(
        host_shell_argv(docker_host, key_path, CGROUP_PIDS_MAX, str(limit), container),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0 or done.stdout.strip() != str(limit):
        raise RuntimeError(
            f"{container}: the runtime has no `update`, and its cgroup's pids.max could not be "
            f"set to {limit}: {(done.stderr or done.stdout).strip()[-300:]}"
        )
    return limit


def _docker_update(docker_host: str, key_path: str | None, container: str, limit: int) -> int:
    for args in (
        ("update", "--pids-limit", str(limit), container),
        ("inspect", "--format", "{{.HostConfig.PidsLimit}}", container),
    ):
        done = subprocess.run(
            docker_argv(docker_host, key_path, *args),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(f"docker {args[0]} {container}: {done.stderr.strip()[-300:]}")
    applied = int(done.stdout.strip() or 0)
    if applied != limit:
        raise RuntimeError(f"{container}: PIDs limit reads back as {applied}, not {limit}")
    return applied


class _PidsLimitProvider(ResourceProvider):
    # Pulumi leaves None-valued properties out: key_path is absent when no key is configured.
    def create(self, props: dict[str, Any]) -> CreateResult:
        apply_pids_limit(
            props["docker_host"], props.get("key_path"), props["container"], int(props["limit"])
        )
        return CreateResult(id_=props["instance_id"], outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaced = [key for key in ("instance_id", "container") if olds.get(key) != news.get(key)]
        changed = replaced or olds.get("limit") != news.get("limit")
        return DiffResult(changes=bool(changed), replaces=replaced, delete_before_replace=True)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        apply_pids_limit(
            news["docker_host"], news.get("key_path"), news["container"], int(news["limit"])
        )
        return UpdateResult(outs=news)


class PidsLimit(Resource):
    def __init__(
        self,
        name: str,
        *,
        docker_host: str,
        key_path: str | None,
        container: pulumi.Input[str],
        instance_id: pulumi.Input[str],
        limit: int = PIDS_LIMIT,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "docker_host": docker_host,
            "key_path": key_path,
            "container": container,
            "instance_id": instance_id,
            "limit": limit,
        }
        super().__init__(_PidsLimitProvider(), name, props, opts)
