"""The restored VM as a Pulumi resource, for real: `up` of an inline program restores a clone
from the cached snapshot (RestoredDomain), with the stack's own SSH key as its only login and
new host keys; it answers HTTP 200; `destroy` leaves no domain and no overlay."""

from __future__ import annotations

import secrets
import tempfile
import urllib.request
from pathlib import Path

import pulumi
import pytest
from pulumi import automation as auto

from components import libvirt_cli
from components.guest_ssh import GuestSsh, pin_host_key
from components.host import free_loopback_ports
from components.readiness import HttpReady
from components.restored_domain import RestoredDomain
from components.snapshot import ensure_snapshot, recipe_for_defaults, vm_images
from components.snapshot_restore import sweep
from components.ssh_key import SshKeyPair

pytestmark = pytest.mark.integration


def test_up_restores_a_serving_clone_and_destroy_removes_it() -> None:
    images = vm_images()
    recipe = recipe_for_defaults(images, 512, 1)
    snapshot = ensure_snapshot(recipe, images, libvirt_cli.LOCAL_URI)  # made outside `up`
    stack_name = f"snaptest-{secrets.token_hex(3)}"
    domain_name = f"twinlab-{stack_name}-vm-restored"
    http_port, ssh_port = free_loopback_ports(2)

    def program() -> None:
        key = SshKeyPair("key", comment=domain_name)
        domain = RestoredDomain(
            "restored",
            domain_name=domain_name,
            recipe=recipe,
            images_dir=str(images.directory),
            http_port=http_port,
            ssh_port=ssh_port,
            authorized_key=key.public_key_openssh,
            uri=libvirt_cli.LOCAL_URI,
            cpuset="0",
        )
        ready = HttpReady(
            "ready",
            url=f"http://127.0.0.1:{http_port}/healthz",
            instance_id=domain.id,
            timeout_s=60,
            opts=pulumi.ResourceOptions(depends_on=[domain]),
        )
        pulumi.export("privateKey", pulumi.Output.secret(key.private_key_openssh))
        pulumi.export("hostKey", domain.host_key)
        pulumi.export("stages", domain.stages_s)
        pulumi.export("readySeconds", ready.ready_s)

    stack = auto.create_stack(
        stack_name=stack_name, project_name="twinlab-snaptest", program=program
    )
    try:
        result = stack.up(color="never", on_output=print)
        outputs = {key: value.value for key, value in result.outputs.items()}
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=10) as answer:
            assert answer.status == 200
        assert outputs["stages"]["first_http_200"] > 0
        with tempfile.TemporaryDirectory() as scratch:
            private_key = Path(scratch) / "key"
            private_key.write_text(outputs["privateKey"])
            private_key.chmod(0o600)
            known_hosts = Path(scratch) / "known_hosts"
            pin_host_key(known_hosts, outputs["hostKey"])
            # The stack's key logs in, against the clone's own new host key...
            guest = GuestSsh(ssh_port, private_key, known_hosts, snapshot.ssh_user)
            assert guest.run("hostname").strip()
            # ...and the snapshot's key no longer does (negative control).
            old = GuestSsh(ssh_port, snapshot.private_key, known_hosts, snapshot.ssh_user)
            with pytest.raises(Exception, match="exited 255"):
                old.run("true", timeout_s=60)
        stack.destroy(color="never", on_output=print)
        assert not libvirt_cli.domain_exists(domain_name)
        assert not (snapshot.directory / "clones" / f"{domain_name}.qcow2").exists()
    finally:
        left = sweep(domain_name)
        stack.workspace.remove_stack(stack_name, force=True)
        assert left == [], f"left behind: {left}"
