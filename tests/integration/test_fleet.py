"""A fleet in one stack, for real: two hosts reached through two SSH endpoints on loopback
(twinlab's sshd on 127.0.0.1:2222 and a second instance, its own host key, on :2223; both lead
to this machine's daemons), as stacks/Pulumi.fleet.yaml. `up` declares one Docker and one
libvirt provider per host, with the provider's own SSH client on each URI; the container and
the VM answer on both hosts under names and ports of their own; `fab run-all`'s fleet runner
(reduced plan) reports both hosts side by side; destroy leaves nothing on either; and after a
SIGKILL of `up`, `fab recover`'s recovery sweeps both hosts."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto
from rich.console import Console

from components import outputs
from components.naming import stack_prefix
from scripts import leftovers
from scripts.checks.fleet import run_fleet
from scripts.checks.lifecycle import RunOptions
from scripts.checks.load.closed_loop import LoadPlan
from scripts.checks.results.fleet_report import HOST_KEY
from scripts.checks.results.samples import read_samples
from scripts.checks.targets.deployed import read_deployed
from scripts.recover import names_prefix, recover
from tests.deploy import ROOT, ci_stack_config, deployed, new_stack_name, start_twinlab_sshd
from tests.integration.test_recovery import domain_defined, kill_group, start_up, wait_until

HOSTS = {"a": 2222, "b": 2223}
# Short and few: enough for every group to produce figures on both hosts within minutes.
REDUCED = RunOptions(
    groups=("isolation", "load", "resources"),
    load_plan=LoadPlan(duration_s=1, warmup_s=0, repeats=2, endpoints=("static",)),
    open_loop_repeats=1,
    resource_checks=("r2", "r3"),
    idle_window_s=2.0,
    weakened=False,
)


def fleet_config() -> dict[str, str]:
    """stacks/Pulumi.fleet.yaml's config, on free ports (host b: the same + its offset)."""
    document = yaml.safe_load((ROOT / "stacks/Pulumi.fleet.yaml").read_text())
    raw = {key.split(":", 1)[1]: str(value) for key, value in document["config"].items()}
    ports = ci_stack_config()
    keys = ("containerHttpPort", "vmHttpPort", "vmSshPort")
    return raw | {key: ports[key] for key in keys}


def provider_inputs(stack: auto.Stack, package: str) -> list[dict[str, Any]]:
    deployment = stack.export_stack().deployment or {}
    kind = f"pulumi:providers:{package}"
    return [r.get("inputs", {}) for r in deployment.get("resources", []) if r["type"] == kind]


def version_of(url: str) -> str:
    with urllib.request.urlopen(url + "/info", timeout=10) as response:
        return str(json.load(response)["version"])


@pytest.fixture(scope="module")
def sshd_instances() -> None:
    start_twinlab_sshd(*HOSTS.values())


@pytest.mark.integration
def test_two_hosts_deploy_report_side_by_side_and_leave_nothing(
    sshd_instances: None, tmp_path: Path
) -> None:
    config = fleet_config() | {"loadHost": "a"}  # one machine: a reaches b's loopback
    started = time.monotonic()
    with deployed(config) as (stack, out):
        up_s = time.monotonic() - started
        hosts = out[outputs.HOSTS]
        assert sorted(hosts) == ["a", "b"] and out[outputs.LOAD_HOST] == "a"
        for name, port in HOSTS.items():
            ssh = hosts[name][outputs.HOST_SSH]
            assert (ssh[outputs.SSH_HOST], ssh[outputs.SSH_PORT]) == ("127.0.0.1", port)
        variants = out[outputs.VARIANTS]
        assert sorted(variants) == ["container@a", "container@b", "vm@a", "vm@b"]
        prefix = {name: stack_prefix(stack.name, name) for name in HOSTS}
        for key, item in variants.items():
            name, host = key.split("@")
            assert (item[outputs.NAME], item[outputs.HOST]) == (name, host)
            assert item[outputs.INSTANCE_NAME].startswith(prefix[host] + "-")
            assert version_of(item[outputs.URL]) == out[outputs.APP_VERSION]
        assert len({item[outputs.URL] for item in variants.values()}) == 4

        # One provider of each per host, each with its own endpoint: the libvirt provider's own
        # SSH client took the qemu+ssh URIs with their ports (components/libvirt_ssh_quirks.py).
        dockers = sorted(p["host"] for p in provider_inputs(stack, "docker"))
        assert dockers == [f"ssh://root@127.0.0.1:{port}" for port in HOSTS.values()]
        uris = sorted(p["uri"].split("?")[0] for p in provider_inputs(stack, "libvirt"))
        assert uris == [f"qemu+ssh://root@127.0.0.1:{port}/system" for port in HOSTS.values()]

        checked = time.monotonic()
        fleet = run_fleet(
            read_deployed(stack.name),
            dataclasses.replace(REDUCED, results_dir=tmp_path),
            Console(stderr=True),
        )
        run_all_s = time.monotonic() - checked
        assert sorted(fleet.outcomes) == ["a", "b"] and not fleet.failures
        report = (fleet.run_dir / "report.md").read_text()
        assert "| a: verdict | a: ratio (95 % CI) | b: verdict |" in report
        assert "## Spread across hosts" in report and "--serial-hosts" in report
        assert "on the machine of host a (`twinlab:loadHost`)" in report
        samples = read_samples(fleet.run_dir / "samples.jsonl")
        by_host = {s.metadata[HOST_KEY] for s in samples}
        assert by_host == {"a", "b"}
        for host in HOSTS:
            kinds = {s.kind for s in samples if s.metadata[HOST_KEY] == host}
            assert {"container", "vm"} <= kinds, (host, kinds)
            metrics = {s.metric for s in samples if s.metadata[HOST_KEY] == host}
            assert "requests_per_s" in metrics, metrics

        destroyed = time.monotonic()
        stack.destroy(color="never")
        destroy_s = time.monotonic() - destroyed
        for host in HOSTS:
            remaining = leftovers.find(prefix[host] + "-")
            assert remaining.count() == 0, (host, remaining.describe())
    leftovers.remove_key_files(stack.name)  # the VMs' keys the checks wrote (vm@a, vm@b)
    print(
        f"fleet of 2 hosts: up {up_s:.0f} s, run-all (reduced) {run_all_s:.0f} s, destroy "
        f"{destroy_s:.0f} s, load average {os.getloadavg()[0]:.2f}"
    )


@pytest.mark.integration
def test_recover_after_sigkill_of_a_fleet_up_sweeps_every_host(sshd_instances: None) -> None:
    """`fab recover` on a fleet: `up` killed outright while host b's VM is being defined;
    the recovery sweeps each host through its own SSH endpoint and leaves nothing on either."""
    name = new_stack_name()
    stack = auto.create_stack(stack_name=name, work_dir=str(ROOT))
    stack.set_all_config(
        {f"twinlab:{key}": auto.ConfigValue(value) for key, value in fleet_config().items()}
    )
    prefix = {host: stack_prefix(name, host) + "-" for host in HOSTS}
    try:
        up = start_up(name)
        try:
            wait_until(domain_defined, prefix["b"], up)
        finally:
            kill_group(up)
        assert leftovers.find(prefix["b"]).count() > 0, "the kill left resources on host b"
        log: list[str] = []
        recovered = recover(name, say=log.append)
        assert recovered.locks_cleared, "\n".join(log)
        swept_hosts = [line for line in log if "removed by name on host" in line]
        for port in HOSTS.values():
            assert any(f"127.0.0.1:{port}" in line for line in swept_hosts), log
        assert recovered.remaining.count() == 0, recovered.remaining.describe()
        for host in HOSTS:
            assert leftovers.find(prefix[host]).count() == 0, host
    finally:
        leftovers.remove(names_prefix(name))
        stack.workspace.remove_stack(name, force=True)
