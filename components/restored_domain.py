"""A VM restored from the cached snapshot, as a Pulumi resource (a dynamic provider: `virsh
restore` has no pulumi-libvirt resource). Create finds or makes the snapshot for the recipe,
restores a clone on the given 127.0.0.1 ports, then gives it its own SSH host keys, the host's
clock and the stack's login key; delete destroys the domain and its overlay. The clone is
transient in libvirt, like every checks' clone: it does not survive libvirtd restarting.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

from components.snapshot import SnapshotRecipe

# Changing any of these means another domain: replace it (delete first, the name is fixed).
REPLACING = ("name", "http_port", "ssh_port", "cpuset", "recipe", "images_dir", "uri")


class _RestoredDomainProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        # Imported here: the provider runs in its own process from a pickled copy.
        from pathlib import Path

        from components.guest_ssh import GuestSsh, pin_host_key
        from components.snapshot import SnapshotRecipe, ensure_snapshot
        from components.snapshot_identity import refresh_identity
        from components.snapshot_restore import remove, restore_until_serving
        from workloads.images.manifest import read_manifest

        recipe = SnapshotRecipe.from_record(props["recipe"])
        images = read_manifest(Path(props["images_dir"]))
        snapshot = ensure_snapshot(recipe, images, props["uri"])
        clone = restore_until_serving(
            snapshot,
            props["name"],
            http_port=int(float(props["http_port"])),
            ssh_port=int(float(props["ssh_port"])),
            timeout_s=float(props["timeout_s"]),
            cpuset=props["cpuset"],
        )
        try:
            guest = GuestSsh(
                clone.ssh_port, snapshot.private_key, snapshot.known_hosts, snapshot.ssh_user
            )
            host_key = refresh_identity(guest, props["authorized_key"])
            known_hosts = clone.overlay.with_suffix(".known_hosts")
            pin_host_key(known_hosts, host_key)
        except BaseException:
            remove(clone.name, clone.overlay)
            raise
        outs = {
            **props,
            "uuid": clone.uuid,
            "overlay": str(clone.overlay),
            "snapshot_dir": str(snapshot.directory),
            "host_key": host_key,
            "stages_s": {stage: round(seconds, 3) for stage, seconds in clone.stages_s.items()},
        }
        return CreateResult(id_=clone.uuid, outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in REPLACING if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from pathlib import Path

        from components.snapshot_restore import remove

        overlay = Path(props["overlay"])
        remove(props["name"], overlay, props["uri"])
        overlay.with_suffix(".known_hosts").unlink(missing_ok=True)


class RestoredDomain(Resource):
    """One clone of the snapshot for `recipe`; `authorized_key` becomes its only SSH login."""

    uuid: pulumi.Output[str]
    host_key: pulumi.Output[str]
    stages_s: pulumi.Output[dict[str, float]]

    def __init__(
        self,
        name: str,
        *,
        domain_name: str,
        recipe: SnapshotRecipe,
        images_dir: str,
        http_port: int,
        ssh_port: int,
        authorized_key: pulumi.Input[str],
        uri: str,
        cpuset: str | None = None,
        timeout_s: float = 120.0,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        recipe_fields = asdict(recipe)
        recipe_fields["app_environment"] = [list(pair) for pair in recipe.app_environment]
        super().__init__(
            _RestoredDomainProvider(),
            name,
            {
                "name": domain_name,
                "recipe": recipe_fields,
                "images_dir": images_dir,
                "http_port": http_port,
                "ssh_port": ssh_port,
                "cpuset": cpuset,
                "authorized_key": authorized_key,
                "uri": uri,
                "timeout_s": timeout_s,
                "uuid": None,
                "host_key": None,
                "stages_s": None,
            },
            opts,
        )
