"""Whether a variant that needs a Docker runtime (gVisor's runsc) can run is asked of the
stack's own Docker daemon, and in a fleet of each host's: over ssh:// on that host, the way the
Docker provider reaches it; never of this machine's daemon for a remote host."""

from __future__ import annotations

import json

import pytest

from components import host as host_facts
from components import stack
from components.errors import ConfigError
from components.host import HostFacts, docker_info_runtimes_argv
from components.spec import parse_spec
from components.variant import Variant

pytestmark = pytest.mark.unit
INFO = "docker info --format '{{json .Runtimes}}'"


def test_a_remote_daemons_runtimes_are_asked_on_that_host_over_ssh() -> None:
    argv = docker_info_runtimes_argv("ssh://root@10.0.0.7:2222", "/keys/id")
    assert argv[0] == "ssh" and argv[-1] == INFO
    assert argv[1:3] == ["-i", "/keys/id"]
    assert argv[-7:-1] == ["-l", "root", "-p", "2222", "--", "10.0.0.7"]
    assert "docker" not in argv[:-1]  # no local docker CLI


def test_a_local_or_tcp_daemon_is_asked_with_the_docker_cli() -> None:
    assert docker_info_runtimes_argv("tcp://127.0.0.1:2375", None)[:3] == [
        "docker",
        "-H",
        "tcp://127.0.0.1:2375",
    ]


def test_the_facts_ask_the_stacks_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []

    def run(argv: list[str], **_kwargs: object) -> object:
        asked.append(argv)
        return type("Done", (), {"returncode": 0, "stdout": '{"runc": {}, "runsc-x": {}}'})()

    monkeypatch.setattr("components.host.subprocess.run", run)
    host_facts.docker_runtimes.cache_clear()
    facts = host_facts.probe_host("tcg", "1.0.0", "ssh://root@127.0.0.1:2222", "/k")
    assert facts.docker_runtimes() == {"runc", "runsc-x"}
    assert asked and asked[0][0] == "ssh" and asked[0][-1] == INFO
    host_facts.docker_runtimes.cache_clear()


def needs_runtime(facts: HostFacts) -> str | None:
    return None if "runsc-x" in facts.docker_runtimes() else "no runtime 'runsc-x'"


SANDBOX = Variant(
    name="container",
    kind="sandbox",
    ports=(),
    unavailable=needs_runtime,
    declare=lambda *_args: None,  # type: ignore[arg-type]
    summary="a variant that needs runsc-x",
)


def test_each_host_of_a_fleet_is_judged_by_its_own_docker_daemon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hosts = [
        {
            "name": name,
            "dockerHost": f"ssh://root@127.0.0.1:{port}",
            "libvirtUri": f"qemu+ssh://root@127.0.0.1:{port}/system",
        }
        for name, port in (("a", 2222), ("b", 2223))
    ]
    facts = HostFacts(
        2, 24000, True, "tcg", "1.0.0", lambda _p: None, lambda _p: True,
        docker_runtimes=lambda: frozenset({"runc", "runsc-x"}),  # this machine's: not asked
    )  # fmt: skip
    spec = parse_spec({"hosts": json.dumps(hosts)}, stack="t", host=facts, registered=(SANDBOX,))
    specs = {h.name: spec.on_host(h, "tcg") for h in spec.fleet}
    by_daemon = {
        "ssh://root@127.0.0.1:2222": frozenset({"runc", "runsc-x"}),
        "ssh://root@127.0.0.1:2223": frozenset({"runc"}),
    }
    monkeypatch.setattr(stack, "docker_runtimes", lambda url, _key: by_daemon[url])
    with pytest.raises(ConfigError) as refused:
        stack.require_runnable(specs, facts)
    assert refused.value.problems == [
        "host b: variant container cannot run there: no runtime 'runsc-x'"
    ]
    by_daemon["ssh://root@127.0.0.1:2223"] = frozenset({"runsc-x"})
    stack.require_runnable(specs, facts)  # both hosts have it: no error
