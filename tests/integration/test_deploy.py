"""Real deployments through the Automation API: up, both answer, limits as configured, destroy
leaves nothing, and a second destroy is a no-op."""

from __future__ import annotations

import json
import subprocess
import urllib.request
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from pulumi import automation as auto

from components import outputs
from components.naming import stack_prefix
from scripts import leftovers
from scripts.checks.targets.deployed import write_private_key
from scripts.checks.targets.target import parse_target
from tests.deploy import PORT_KEYS, ci_stack_config, deployed

pytestmark = pytest.mark.integration


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return dict(json.load(response))


def deletes(result: auto.DestroyResult) -> int:
    changes = result.summary.resource_changes or {}
    return changes.get(auto.OpType.DELETE, 0)


def run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def test_other_limits_deploy_with_no_code_change_and_leave_nothing(deployed_stack: Any) -> None:
    # Depends on the session stack only so that both never boot at the same time.
    config = ci_stack_config(vcpus="2", memoryMib="768", env=json.dumps({"MARK": 'a "b" c'}))
    with deployed(config) as (stack, out):
        prefix = stack_prefix(stack.name)
        container, vm = out[outputs.VARIANTS]["container"], out[outputs.VARIANTS]["vm"]
        assert container[outputs.URL] == f"http://127.0.0.1:{config['containerHttpPort']}"
        assert vm[outputs.URL] == f"http://127.0.0.1:{config['vmHttpPort']}"
        versions = {get_json(v[outputs.URL] + "/info")["version"] for v in (container, vm)}
        assert versions == {out[outputs.APP_VERSION]}

        # The same extra environment reaches the app in both.
        box_env = run("docker", "exec", container[outputs.INSTANCE_NAME], "printenv", "MARK")
        key = write_private_key(stack.name, out[outputs.SSH_PRIVATE_KEYS]["vm"])
        with parse_target(f"{vm[outputs.TARGET]}?key={key}") as guest:
            app_pid = "$(systemctl show -p MainPID --value twinlab-webapp)"
            environ = guest.run(f"cat /proc/{app_pid}/environ", root=True).stdout
        assert box_env.strip() == 'a "b" c'
        assert 'MARK=a "b" c' in environ.split("\0")

        inspect = json.loads(run("docker", "inspect", container[outputs.INSTANCE_NAME]))[0]
        host_config = inspect["HostConfig"]
        assert host_config["Memory"] == 768 * 1024 * 1024
        assert host_config["CpusetCpus"] == "0-1"
        bindings = host_config["PortBindings"]["8080/tcp"]
        assert bindings == [{"HostIp": "127.0.0.1", "HostPort": config["containerHttpPort"]}]

        domain = ET.fromstring(
            run("virsh", "-c", "qemu:///system", "dumpxml", vm[outputs.INSTANCE_NAME])
        )
        assert domain.findtext("memory") == str(768 * 1024)  # KiB
        vcpu = domain.find("vcpu")
        assert vcpu is not None and vcpu.text == "2" and vcpu.get("cpuset") == "0-1"
        assert f"hostfwd=tcp:127.0.0.1:{config['vmHttpPort']}-:8080" in ET.tostring(
            domain, encoding="unicode"
        )

        ports = tuple(int(config[key]) for key in PORT_KEYS)
        first = stack.destroy(color="never")
        assert deletes(first) > 0
        remaining = leftovers.find(prefix, ports=ports)
        assert remaining.count() == 0, remaining.describe()
        second = stack.destroy(color="never")
        assert deletes(second) == 0


def test_session_stack_serves_the_same_version_from_both(deployed_stack: Any) -> None:
    container, vm = (
        deployed_stack[outputs.VARIANTS]["container"],
        deployed_stack[outputs.VARIANTS]["vm"],
    )
    infos = [get_json(v[outputs.URL] + "/info") for v in (container, vm)]
    assert infos[0]["version"] == infos[1]["version"] == deployed_stack[outputs.APP_VERSION]
    assert container[outputs.READY_S] > 0 and vm[outputs.READY_S] > 0
