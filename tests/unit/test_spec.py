"""Config validation: every bad value is rejected with the key's name and what is accepted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from components.errors import ConfigError
from components.host import HostFacts, memory_mib_from_meminfo, process_from_ss
from components.registry import VARIANTS, by_name
from components.spec import config_keys, parse_spec
from components.thresholds import DEFAULTS
from components.variant import PortNeed, Variant

KEYS = config_keys(VARIANTS)

pytestmark = pytest.mark.unit

BUSY_PORT = 15000


def fake_host(**overrides: object) -> HostFacts:
    facts = HostFacts(
        cpu_count=2,
        memory_mib=24000,
        is_root=True,
        detected_virt_mode="tcg",
        built_app_version="1.0.0",
        port_holder=lambda port: "nginx (pid 42): nginx" if port == BUSY_PORT else None,
        readable=lambda path: path == "/keys/id_ed25519",
    )
    return dataclasses.replace(facts, **overrides)  # type: ignore[arg-type]


def test_defaults_give_a_valid_spec_with_identical_limits() -> None:
    spec = parse_spec({}, stack="dev", host=fake_host(), registered=VARIANTS)
    assert (spec.vcpus, spec.memory_mib, spec.cpu_set) == (1, 512, "0")
    assert spec.app_version == "1.0.0"
    assert spec.placement.virt_mode == "tcg"
    assert spec.placement.libvirt_uri == "qemu:///system"
    assert spec.app_environment()["TWINLAB_WORKERS"] == "2"


def test_other_limits_are_taken_as_given() -> None:
    raw = {"vcpus": "2", "memoryMib": "768", "containerHttpPort": "19080"}
    spec = parse_spec(raw, stack="dev", host=fake_host(), registered=VARIANTS)
    assert (spec.vcpus, spec.memory_mib, spec.cpu_set) == (2, 768, "0-1")
    assert spec.port("containerHttpPort") == 19080


# (config, key named in the error, fragment of the reason)
BAD_INPUTS = [
    ({"memoryMib": "lots"}, "twinlab:memoryMib", "not an integer"),
    ({"memoryMib": "64"}, "twinlab:memoryMib", "between 256"),
    ({"vcpus": "3"}, "twinlab:vcpus", "between 1 and 2"),
    ({"vcpus": "0"}, "twinlab:vcpus", "between 1 and 2"),
    ({"vcpus": "1.5"}, "twinlab:vcpus", "not an integer"),
    ({"containerHttpPort": str(BUSY_PORT)}, "twinlab:containerHttpPort", "already in use"),
    ({"vmHttpPort": "18080"}, "twinlab:vmHttpPort", "same port as twinlab:containerHttpPort"),
    ({"vmSshPort": "70000"}, "twinlab:vmSshPort", "between 1 and 65535"),
    ({"virtMode": "xen"}, "twinlab:virtMode", "unknown virtualization mode"),
    ({"virtMode": "kvm"}, "twinlab:virtMode", "found KVM unusable"),
    ({"appVersion": ""}, "twinlab:appVersion", "empty"),
    ({"appVersion": "2.0.0"}, "twinlab:appVersion", "no images built"),
    ({"appVersion": "1 0"}, "twinlab:appVersion", "not a version string"),
    ({"dockerHost": "docker.local"}, "twinlab:dockerHost", "not a Docker host URL"),
    ({"libvirtUri": "xen:///system"}, "twinlab:libvirtUri", "not a libvirt QEMU system URI"),
    ({"libvirtUri": "qemu:///session"}, "twinlab:libvirtUri", "not a libvirt QEMU system URI"),
    (
        {"dockerHost": "ssh://root@127.0.0.1", "remoteSshKeyPath": "/nope/key"},
        "twinlab:remoteSshKeyPath",
        "not a readable file",
    ),
    ({"remoteSshKeyPath": "/keys/id_ed25519"}, "twinlab:remoteSshKeyPath", "neither daemon"),
    ({"dockerHost": "ssh://root@127.0.0.1:2222"}, "twinlab:libvirtUri", "same SSH"),
    ({"env": "[1, 2]"}, "twinlab:env", "must be an object"),
    ({"env": "{not json"}, "twinlab:env", "not JSON"),
    ({"env": '{"TWINLAB_WORKERS": "9"}'}, "twinlab:env", "set by twinlab"),
    ({"env": '{"A": "two\\nlines"}'}, "twinlab:env", "newline"),
    ({"workers": "100"}, "twinlab:workers", "between 1 and 16"),
    ({"poolDir": "relative/dir"}, "twinlab:poolDir", "not an absolute path"),
    ({"memroyMib": "512"}, "twinlab:memroyMib", "did you mean memoryMib"),
    ({"thresholds": '{"r1": 2}'}, "twinlab:thresholds", "unknown"),
    ({"variants": "contianer,vm"}, "twinlab:variants", "did you mean container?"),
    ({"variants": "container,,vm"}, "twinlab:variants", "not a comma list or JSON list"),
    ({"variants": '["vm", 3]'}, "twinlab:variants", "not a comma list or JSON list"),
    ({"variants": "vm,vm"}, "twinlab:variants", "named twice"),
    ({"tcgCacheMiB": "0"}, "twinlab:tcgCacheMiB", "between 1 and 2048"),
    ({"tcgCacheMiB": "4096"}, "twinlab:tcgCacheMiB", "between 1 and 2048"),
    ({"tcgCacheMiB": "64M"}, "twinlab:tcgCacheMiB", "not an integer"),
]


@pytest.mark.parametrize(
    ("raw", "key", "reason"), BAD_INPUTS, ids=[f"{case[1]}={case[0]}" for case in BAD_INPUTS]
)
def test_bad_input_is_rejected_naming_the_key(raw: dict[str, str], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_spec(raw, stack="dev", host=fake_host(), registered=VARIANTS)
    matching = [problem for problem in error.value.problems if problem.startswith(key)]
    assert matching, error.value.problems
    assert reason in matching[0]


def test_privileged_port_needs_root() -> None:
    with pytest.raises(ConfigError, match=r"twinlab:containerHttpPort.*below 1024 need root"):
        parse_spec(
            {"containerHttpPort": "80"},
            stack="dev",
            host=fake_host(is_root=False),
            registered=VARIANTS,
        )


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as error:
        parse_spec(
            {"vcpus": "x", "memoryMib": "y"}, stack="dev", host=fake_host(), registered=VARIANTS
        )
    assert len(error.value.problems) == 2


def test_a_port_held_by_the_stack_itself_is_not_in_use() -> None:
    host = fake_host(port_holder=lambda port: "qemu (pid 7): qemu -name guest=twinlab-dev-vm,x")
    spec = parse_spec(
        {}, stack="dev", host=host, registered=VARIANTS, owned_names=("guest=twinlab-dev-vm,",)
    )
    assert spec.port("vmHttpPort") == 18081


def test_auto_mode_without_a_probe_asks_for_setup() -> None:
    with pytest.raises(ConfigError, match=r"run scripts/setup\.sh"):
        parse_spec({}, stack="dev", host=fake_host(detected_virt_mode=None), registered=VARIANTS)


def test_every_key_has_documentation() -> None:
    assert all(key.doc and key.accepted for key in KEYS)


def test_host_parsers() -> None:
    assert memory_mib_from_meminfo("MemTotal:       24542624 kB\nMemFree: 1 kB\n") == 23967
    ss = 'LISTEN 0 4096 127.0.0.1:18080 0.0.0.0:* users:(("docker-proxy",pid=811,fd=4))'
    assert process_from_ss(ss) == "docker-proxy (pid 811)"
    assert process_from_ss("") is None


def test_readme_documents_every_config_key_with_its_default() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("| ")
    }
    for key in KEYS:
        assert key.name in rows, f"README's config table lacks {key.name}"
        if key.default and key.default not in ("{}",):
            assert key.default in rows[key.name], f"README's default for {key.name}"


def sandbox_variant(unavailable: str | None) -> Variant:
    """A registered variant this host cannot run (as gVisor without runsc would be)."""
    return Variant(
        name="sandbox",
        kind="sandbox",
        ports=(PortNeed("sandboxHttpPort", 18089, "http", "127.0.0.1 port of the sandbox"),),
        unavailable=lambda _host: unavailable,
        declare=VARIANTS[0].declare,
        summary="test sandbox",
    )


def test_default_variants_are_every_registered_one_the_host_can_run() -> None:
    registry = (by_name("container"), by_name("vm"), sandbox_variant("runsc is not registered"))
    spec = parse_spec({}, stack="dev", host=fake_host(), registered=registry)
    assert [v.name for v in spec.variants] == ["container", "vm"]
    assert spec.skipped_variants == {"sandbox": "runsc is not registered"}
    assert "sandboxHttpPort" not in spec.ports  # no port is checked for what is not deployed


def test_naming_a_variant_the_host_cannot_run_is_an_error_with_the_reason() -> None:
    registry = (*VARIANTS, sandbox_variant("runsc is not a registered Docker runtime"))
    with pytest.raises(ConfigError, match=r"cannot run sandbox: runsc is not a registered"):
        parse_spec({"variants": "sandbox"}, stack="dev", host=fake_host(), registered=registry)


def test_chosen_variants_only_and_their_ports_only() -> None:
    raw = {"variants": '["vm"]', "containerHttpPort": str(BUSY_PORT)}
    spec = parse_spec(raw, stack="dev", host=fake_host(), registered=VARIANTS)
    assert [v.name for v in spec.variants] == ["vm"]
    assert set(spec.ports) == {"vmHttpPort", "vmSshPort"}


def test_a_host_without_qemu_deploys_the_container_and_says_why_not_the_vm() -> None:
    host = fake_host(has_command=lambda name: name != "qemu-system-x86_64")
    spec = parse_spec({}, stack="dev", host=host, registered=VARIANTS)
    assert [v.name for v in spec.variants] == ["container"]
    assert "qemu-system-x86_64 is not installed" in spec.skipped_variants["vm"]


def test_thresholds_are_parsed_once_into_the_spec() -> None:
    raw = {"thresholds": '{"r1_min_start_ratio": 7}'}
    spec = parse_spec(raw, stack="dev", host=fake_host(), registered=VARIANTS)
    assert spec.thresholds.r1_min_start_ratio == 7.0
    assert spec.thresholds.r2_min_memory_ratio == DEFAULTS["tcg"].r2_min_memory_ratio


def test_the_restored_vm_is_deployed_only_when_named() -> None:
    unset = parse_spec({}, stack="dev", host=fake_host(), registered=VARIANTS)
    assert "vm-restored" not in [v.name for v in unset.variants]
    assert unset.skipped_variants["vm-restored"] == "deployed only when named in twinlab:variants"
    named = parse_spec(
        {"variants": "container,vm,vm-restored"}, stack="dev", host=fake_host(), registered=VARIANTS
    )
    assert [v.name for v in named.variants] == ["container", "vm", "vm-restored"]
    assert {"vmRestoredHttpPort", "vmRestoredSshPort"} <= set(named.ports)


def test_tcg_cache_size_defaults_to_qemus_and_is_taken_under_tcg() -> None:
    assert parse_spec({}, stack="dev", host=fake_host(), registered=VARIANTS).tcg_cache_mib is None
    spec = parse_spec({"tcgCacheMiB": " 64 "}, stack="dev", host=fake_host(), registered=VARIANTS)
    assert spec.tcg_cache_mib == 64


def test_tcg_cache_size_is_refused_under_kvm() -> None:
    kvm_host = fake_host(detected_virt_mode="kvm")
    assert parse_spec({}, stack="dev", host=kvm_host, registered=VARIANTS).tcg_cache_mib is None
    with pytest.raises(ConfigError, match=r"twinlab:tcgCacheMiB = '64': VMs run under KVM"):
        parse_spec({"tcgCacheMiB": "64"}, stack="dev", host=kvm_host, registered=VARIANTS)
