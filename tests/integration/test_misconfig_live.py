"""The misconfiguration probes against real containers: each negative control is the stack's
hardened container configuration weakened in exactly one way (scripts/checks/probes/weakenings.py),
started here from the project's image and removed whatever happens, and I1's problem list must
name that weakness with its CIS item. Then a real stack deployment: its container and its VM
must not be flagged (the VM's findings about its own kernel are guest-only)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from components.thresholds import thresholds_for
from components.virt_mode import load_record
from scripts.checks.claims import i1, i2
from scripts.checks.probes import attack_surface, findings, host_baseline, run_isolation
from scripts.checks.probes.weakenings import (
    CONTROLS,
    HARDENED,
    Weakening,
    control_container,
    docker,
)
from scripts.checks.results import verdicts
from scripts.checks.results.samples import VariantLabel
from scripts.checks.targets.deployed import parse_outputs, write_private_keys
from scripts.checks.targets.target import LocalTarget, parse_target
from workloads.images import ImagesNotBuiltError, find_images

pytestmark = pytest.mark.integration
PREFIX = f"twinlab-test-{secrets.token_hex(3)}-"
NO_THRESHOLDS = thresholds_for("tcg")  # the isolation verdicts use none


def virt_mode() -> str:
    record = load_record()
    return record.mode if record is not None else "tcg"


@pytest.fixture(scope="module")
def image() -> str:
    try:
        return find_images().container_image
    except ImagesNotBuiltError as error:
        pytest.fail(str(error), pytrace=False)


def probe(url: str, *, state_changing: bool) -> tuple[verdicts.Samples, tuple[str, ...]]:
    """Isolation samples of one target, and the confining LSMs of the host kernel."""
    with host_baseline() as baseline, parse_target(url) as target:
        samples = run_isolation(
            [target],
            run_id="live",
            virt_mode=virt_mode(),
            baseline=baseline,
            state_changing=state_changing,
        )
        return verdicts.Samples(samples), baseline.lsms


@pytest.mark.parametrize("control", CONTROLS, ids=lambda control: control.name)
def test_i1_names_each_one_way_weakening_with_its_cis_item(image: str, control: Weakening) -> None:
    name = PREFIX + control.name
    with control_container(name, image, control):
        url = f"docker://{name}"
        samples, host_lsms = probe(url, state_changing=False)
    assert docker("inspect", name).returncode != 0, f"{name} was not removed"
    found = [s for s in samples.all if s.metric == control.metric]
    assert len(found) == 1, [s.metric for s in samples.all]
    problems = verdicts.container_isolation_problems(samples, url)
    if control.name == "apparmor-unconfined" and not host_lsms:
        # No LSM in this host's kernel: the probe must say "not measurable", never "confined".
        assert found[0].value == findings.INCONCLUSIVE
        assert "no AppArmor or SELinux" in str(found[0].metadata[findings.REASON_KEY])
        assert not any("(CIS 5.2)" in problem for problem in problems)
        return
    assert found[0].value is True, found[0].metadata
    named = [problem for problem in problems if problem.endswith(f"(CIS {control.cis})")]
    assert named and findings.describe(found[0]) in named, problems
    result = i1.judge(samples, NO_THRESHOLDS)
    assert result.verdict == "does not hold" and f"(CIS {control.cis})" in result.summary


def test_the_hardened_starting_point_is_not_flagged(image: str) -> None:
    name = PREFIX + "hardened"
    with control_container(name, image, HARDENED):
        url = f"docker://{name}"
        samples, _ = probe(url, state_changing=True)
    assert verdicts.container_isolation_problems(samples, url) == []
    blocked = samples.one("dangerous_syscalls_blocked", target=url)
    assert isinstance(blocked, int) and blocked > 0


# --- a real deployment of the stack -----------------------------------------------------------


def test_the_stacks_container_and_vm_are_not_flagged(deployed_stack: dict[str, Any]) -> None:
    """The session's real deployment (tests/conftest.py), shared with the claim tests."""
    stack = deployed_stack["stack"]
    deployment = parse_outputs(stack, deployed_stack, write_private_keys(stack, deployed_stack))
    chosen = [deployment.variant("container"), deployment.variant("vm")]
    container, vm = (variant.target for variant in chosen)
    with host_baseline() as baseline:
        targets = [parse_target(v.target, VariantLabel(v.name, v.kind)) for v in chosen]
        samples = verdicts.Samples(
            run_isolation(targets, run_id="live", virt_mode=virt_mode(), baseline=baseline)
        )
        for target in targets:
            target.close()
    assert verdicts.container_isolation_problems(samples, container) == []
    assert samples.one("pids_unlimited", target=container) is False  # components/pids_limit.py
    assert verdicts.vm_isolation_problems(samples, vm) == []
    guest_only = findings.weaknesses(samples.all, vm, scope=findings.GUEST_ONLY)
    assert guest_only, "the VM's root and devices are its own: reported as guest-only"
    result = i2.judge(samples, NO_THRESHOLDS)
    assert result.verdict == "holds" and "guest-only" in result.summary


# --- host-kernel attack surface ----------------------------------------------------------------


def test_attack_surface_is_counted_or_said_to_be_unmeasurable_on_this_host(image: str) -> None:
    name = PREFIX + "surface"
    published = Weakening("surface", ("-p", "127.0.0.1::8080"), "", "")  # hardened, one port
    with control_container(name, image, published):
        address = docker("port", name, "8080/tcp").stdout.split()[0]  # 127.0.0.1:PORT
        subject = attack_surface.Subject(
            parse_target(f"docker://{name}"),
            lambda: attack_surface.container_pids(name),
            f"http://{address}/healthz",
        )
        assert attack_surface.container_pids(name), "the container's main process"
        (sample,) = attack_surface.attack_surface(LocalTarget("local://"), [subject], 2.0)
    if sample.value == findings.INCONCLUSIVE:
        reason = str(sample.metadata["reason"])
        assert reason.startswith("not measurable on this host: "), reason
        assert "tracefs" in reason or "ftrace" in reason
    else:
        assert isinstance(sample.value, int) and sample.value > 0
