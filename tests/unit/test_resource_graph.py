"""The resource graph under Pulumi mocks: one spec, identical limits, loopback only, secrets."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.host import HostFacts
from components.spec import AppSpec, parse_spec
from workloads.images import ImageSet

pytestmark = pytest.mark.unit
# A well-formed ed25519 public key line (its 32 key bytes are text, not a real key).
FAKE_PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHR3aW5sYWItdGVzdC1mYWtlLWtleS0zMi1ieXRlcyEh twinlab-test"
)


class Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: dict[str, tuple[str, dict[str, Any]]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if "comment" in args.inputs:  # the SSH key pair (a dynamic resource)
            outputs |= {"public_key_openssh": FAKE_PUBLIC_KEY, "private_key_openssh": "PRIVATE"}
        if "timeout_s" in args.inputs:  # the readiness wait (a dynamic resource)
            outputs["ready_s"] = 1.0
        self.resources[args.name] = (args.typ, args.inputs)
        return f"{args.name}-id", outputs

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        return {}, None


RECORDER = Recorder()
pulumi.runtime.set_mocks(RECORDER, preview=False)

from components.container import ContainerDeployment  # noqa: E402
from components.pids_limit import PIDS_LIMIT  # noqa: E402
from components.registry import VARIANTS  # noqa: E402
from components.variant import PortNeed, Variant  # noqa: E402
from components.vm import VmDeployment  # noqa: E402


def images() -> ImageSet:
    """An image set with the fields the components read; the rest (build records) left None."""
    cache = Path("/cache/images/abc")
    used: dict[str, object] = {
        "recipe_hash": "abc",
        "app_version": "1.0.0",
        "container_image": "twinlab/webapp:1.0.0-abc",
        "vm_disk_qcow2": cache / "vm-root.qcow2",
        "vm_kernel": cache / "vmlinuz",
        "vm_initrd": cache / "initrd.img",
        "vm_cmdline": "root=/dev/vda rw console=ttyS0 quiet",
        "guest_http_port": 8080,
        "guest_ssh_port": 22,
        "ssh_user": "twin",
    }
    return ImageSet(**({field.name: None for field in dataclasses.fields(ImageSet)} | used))  # type: ignore[arg-type]


def spec(**raw: str) -> AppSpec:
    host = HostFacts(2, 24000, True, "tcg", "1.0.0", lambda port: None, lambda path: True)
    return parse_spec(raw, stack="test", host=host, registered=VARIANTS)


def deploy(app: AppSpec) -> tuple[ContainerDeployment, VmDeployment]:
    RECORDER.resources.clear()
    return ContainerDeployment("container", app, images()), VmDeployment("vm", app, images())


def inputs(name: str) -> dict[str, Any]:
    return RECORDER.resources[name][1]


def registered(*deployments: ContainerDeployment | VmDeployment) -> pulumi.Output[list[Any]]:
    """Resolves once every resource of the deployments is registered with the mock engine."""
    return pulumi.Output.all(*[d.ready_s for d in deployments], *[d.url for d in deployments])


@pulumi.runtime.test
def test_one_spec_gives_identical_limits_on_both() -> Any:
    app = spec(vcpus="2", memoryMib="768")
    container, vm = deploy(app)

    def check(_: Any) -> None:
        box, domain = inputs("container-app"), inputs("vm-domain")
        assert box["memory"] == domain["memory"] == 768
        assert box["memorySwap"] == 768
        assert box["cpuSet"] == "0-1" and domain["vcpu"] == 2
        assert 'cpuset="0-1"' in domain["xml"]["xslt"]
        assert domain["type"] == "qemu"  # TCG

    return registered(container, vm).apply(check)


@pulumi.runtime.test
def test_every_port_is_published_on_loopback_only() -> Any:
    container, vm = deploy(spec())

    def check(resolved: list[Any]) -> None:
        assert resolved[2:] == ["http://127.0.0.1:18080", "http://127.0.0.1:18081"]
        assert [p["ip"] for p in inputs("container-app")["ports"]] == ["127.0.0.1"]
        forwards = re.findall(r"hostfwd=tcp:([^:]*):", inputs("vm-domain")["xml"]["xslt"])
        assert forwards == ["127.0.0.1", "127.0.0.1"]

    return registered(container, vm).apply(check)


@pulumi.runtime.test
def test_container_is_hardened() -> Any:
    container, _ = deploy(spec())

    def check(_: Any) -> None:
        box = inputs("container-app")
        assert box["user"] == "twinapp"
        assert box["capabilities"]["drops"] == ["ALL"]
        assert box["securityOpts"] == ["no-new-privileges:true"]
        assert box["readOnly"] is True
        assert "privileged" not in box and "pidMode" not in box
        pids = inputs("container-pids-limit")  # pulumi-docker has no pids_limit (CIS 5.29)
        assert pids["limit"] == PIDS_LIMIT and pids["docker_host"] == spec().placement.docker_host

    return registered(container).apply(check)


@pulumi.runtime.test
def test_ssh_key_is_secret_and_reaches_the_guest_cmdline_public_half_only() -> Any:
    _, vm = deploy(spec())

    def check(resolved: list[Any]) -> None:
        cmdline = str(inputs("vm-domain")["cmdlines"])
        assert "twinlab.ssh_key" in cmdline and "PRIVATE" not in cmdline
        assert resolved[-1] is True, "the private key output must be a secret"

    return pulumi.Output.all(registered(vm), pulumi.Output.is_secret(vm.ssh_private_key)).apply(
        check
    )


def test_unknown_types_are_not_declared() -> None:
    types = {typ for typ, _ in RECORDER.resources.values()}
    assert all(t.startswith(("docker:", "libvirt:", "pulumi", "twinlab:")) for t in types), types


def test_spec_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec().vcpus = 4  # type: ignore[misc]


def test_environment_file_quotes_values() -> None:
    from components.vm import environment_file

    assert environment_file({"B": 'say "hi"', "A": "c:\\d"}) == 'A="c:\\\\d"\nB="say \\"hi\\""\n'


SANDBOX = Variant(
    name="sandbox",
    kind="sandbox",
    ports=(PortNeed("sandboxHttpPort", 18089, "http", "127.0.0.1 port of the sandbox"),),
    unavailable=lambda _host: None,
    declare=lambda name, spec, images, opts=None: ContainerDeployment(
        name,
        spec,
        images,
        opts,
        http_port_key="sandboxHttpPort",
        instance_suffix="sandbox",
        volume_suffix="sandbox-data",
        runtime="runsc",
    ),
    summary="a sandboxed container: the container component with another OCI runtime",
)


@pulumi.runtime.test
def test_a_sandbox_variant_is_the_container_component_with_its_runtime_port_and_name() -> Any:
    host = HostFacts(2, 24000, True, "tcg", "1.0.0", lambda port: None, lambda path: True)
    app = parse_spec({}, stack="test", host=host, registered=(*VARIANTS, SANDBOX))
    RECORDER.resources.clear()
    deployments = [variant.declare(variant.name, app, images()) for variant in app.variants]

    def check(resolved: list[Any]) -> None:
        runc, sandbox = inputs("container-app"), inputs("sandbox-app")
        assert sandbox["runtime"] == "runsc" and "runtime" not in runc
        assert (runc["name"], sandbox["name"]) == ("twinlab-test-app", "twinlab-test-sandbox")
        volumes = inputs("container-data")["name"], inputs("sandbox-data")["name"]
        assert volumes == ("twinlab-test-data", "twinlab-test-sandbox-data")
        assert sandbox["ports"][0]["external"] == 18089
        assert sandbox["memory"] == runc["memory"] and sandbox["readOnly"] is True
        assert "http://127.0.0.1:18089" in resolved

    return pulumi.Output.all(
        *[d.ready_s for d in deployments], *[d.url for d in deployments]
    ).apply(check)


# The KVM branch: most users have KVM, no machine here does. The same components under mocks
# with a host whose probe found KVM usable; the domain XML checked against libvirt's schema in
# both modes (tests/domain_xml.py renders what pulumi-libvirt would send).
KVM_HOST = HostFacts(2, 24000, True, "kvm", "1.0.0", lambda port: None, lambda path: True)


def kvm_spec(**raw: str) -> AppSpec:
    return parse_spec(raw, stack="test", host=KVM_HOST, registered=VARIANTS)


@pulumi.runtime.test
def test_the_stack_in_kvm_mode_declares_a_kvm_domain_with_the_hosts_cpu_and_kvm_thresholds(
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    from components import outputs, stack
    from components.thresholds import DEFAULTS

    exported: dict[str, Any] = {}
    monkeypatch.setattr(stack, "find_images", images)
    monkeypatch.setattr(stack, "load_spec", lambda *_: kvm_spec(variants="container,vm"))
    monkeypatch.setattr(stack, "require_docker", lambda *_: None)
    monkeypatch.setattr(stack, "require_libvirt", lambda *_: None)
    monkeypatch.setattr(pulumi, "export", exported.__setitem__)
    RECORDER.resources.clear()
    stack.declare()

    def check(_: Any) -> None:
        domain = inputs("vm-domain")
        assert domain["type"] == "kvm"
        assert domain["cpu"] == {"mode": "host-passthrough"}
        assert "tb-cache" not in domain["xml"]["xslt"]
        assert exported[outputs.VIRT_MODE] == "kvm"
        assert exported[outputs.THRESHOLDS] == DEFAULTS["kvm"].as_dict()
        assert DEFAULTS["kvm"] != DEFAULTS["tcg"]  # else this would not tell the modes apart

    return pulumi.Output.from_input(exported[outputs.VARIANTS]).apply(check)


@pulumi.runtime.test
def test_tcg_mode_emulates_a_cpu_and_sets_the_cache_size_only_when_asked() -> Any:
    from components.vm import port_forward_xslt

    default_xslt = port_forward_xslt(spec(), 8080, 22)
    _, vm = deploy(spec(tcgCacheMiB="64"))

    def check(_: Any) -> None:
        domain = inputs("vm-domain")
        assert domain["type"] == "qemu" and domain.get("cpu") is None
        assert "tb-cache" not in default_xslt
        assert "<tcg><tb-cache unit='MiB'>64</tb-cache></tcg>" in domain["xml"]["xslt"]

    return registered(vm).apply(check)


@pytest.mark.parametrize("mode", ["tcg", "kvm"])
@pulumi.runtime.test
def test_the_domain_xml_is_valid_for_libvirts_schema(mode: str) -> Any:
    import xml.etree.ElementTree as ET

    from tests.domain_xml import provider_xml, schema_problems, transform

    _, vm = deploy(spec(tcgCacheMiB="64") if mode == "tcg" else kvm_spec())

    def check(_: Any) -> None:
        domain = inputs("vm-domain")
        sent = transform(provider_xml(domain), domain["xml"]["xslt"])
        assert schema_problems(sent) is None
        root = ET.fromstring(sent)
        assert root.get("type") == ("qemu" if mode == "tcg" else "kvm")
        cpu = root.find("cpu")
        assert cpu is not None and cpu.get("mode") == (
            None if mode == "tcg" else "host-passthrough"
        )
        cache = root.find("features/tcg/tb-cache")
        if mode == "tcg":
            assert cache is not None and (cache.text, cache.get("unit")) == ("64", "MiB")
        else:
            assert cache is None
        assert root.find("devices/console").get("type") == "pty"  # type: ignore[union-attr]
        # The provider's own virtio-rng: without it an emulated CPU (no RDRAND) leaves the
        # guest's RNG waiting about a second for jitter entropy, and the app's Python with it.
        rngs = root.findall("devices/rng[@model='virtio']/backend[@model='random']")
        assert [rng.text for rng in rngs] == ["/dev/urandom"]

    return registered(vm).apply(check)


@pulumi.runtime.test
def test_the_xslt_gives_what_the_provider_sent_with_the_console_type_it_left_out() -> Any:
    """Against the real thing: the captured provider XML through this stack's XSLT is what
    pulumi-libvirt sent to libvirt (captured), but for the console's type that the XSLT now
    adds; and what it sent failed libvirt's schema on exactly that (the validator bites)."""
    from tests.domain_xml import (
        CAPTURED_PROVIDER_XML,
        CAPTURED_SENT_XML,
        canonical,
        schema_problems,
        transform,
    )

    captured_config = {
        "containerHttpPort": "18380",
        "vmHttpPort": "18381",
        "vmSshPort": "12382",
        "tcgCacheMiB": "64",
    }
    host = HostFacts(2, 24000, True, "tcg", "1.0.0", lambda port: None, lambda path: True)
    app = parse_spec(captured_config, stack="h-memory", host=host, registered=VARIANTS)
    _, vm = deploy(app)

    def check(_: Any) -> None:
        xslt = inputs("vm-domain")["xml"]["xslt"]
        ours = transform(CAPTURED_PROVIDER_XML.read_text(), xslt)
        sent = CAPTURED_SENT_XML.read_text()
        assert canonical(ours) == canonical(sent.replace("<console>", '<console type="pty">'))
        problems = schema_problems(sent)
        assert problems is not None and "devices" in problems
        assert schema_problems(ours) is None

    return registered(vm).apply(check)


@pulumi.runtime.test
def test_a_fleet_declares_one_provider_of_each_per_host_and_names_that_never_meet() -> Any:
    """Two "hosts" that are one machine behind two SSH endpoints (stacks/Pulumi.fleet.yaml):
    each gets its own Docker and libvirt provider, and names, pools and ports of their own."""
    hosts = [
        {
            "name": name,
            "dockerHost": f"ssh://root@127.0.0.1:{port}",
            "libvirtUri": f"qemu+ssh://root@127.0.0.1:{port}/system",
        }
        for name, port in (("a", 2222), ("b", 2223))
    ]
    app = spec(variants="container,vm", hosts=json.dumps(hosts))
    RECORDER.resources.clear()
    declared: list[ContainerDeployment | VmDeployment] = []
    for fleet_host in app.fleet:
        on_host = app.on_host(fleet_host, "tcg")
        declared += [
            ContainerDeployment(f"container-{fleet_host.name}", on_host, images()),
            VmDeployment(f"vm-{fleet_host.name}", on_host, images()),
        ]

    def check(resolved: list[Any]) -> None:
        for name, port in (("a", 2222), ("b", 2223)):
            assert inputs(f"container-{name}-docker")["host"] == f"ssh://root@127.0.0.1:{port}"
            uri = inputs(f"vm-{name}-libvirt")["uri"]
            assert uri == f"qemu+ssh://root@127.0.0.1:{port}/system"
            assert inputs(f"container-{name}-app")["name"] == f"twinlab-test-{name}-app"
            assert inputs(f"vm-{name}-domain")["name"] == f"twinlab-test-{name}-vm"
            assert inputs(f"vm-{name}-pool")["path"].endswith(f"/twinlab-test-{name}")
        urls = resolved[len(declared) :]
        assert len(set(urls)) == len(urls) == 4, urls
        slirp = [inputs(f"vm-{n}-domain")["xml"]["xslt"] for n in "ab"]
        assert "127.0.0.1:18081-" in slirp[0] and "127.0.0.1:18091-" in slirp[1]

    return registered(*declared).apply(check)
