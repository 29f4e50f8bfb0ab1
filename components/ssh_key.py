"""A per-stack SSH key pair as a Pulumi resource; the private half is a Pulumi secret.

Generated once at create, stored (encrypted) in the stack's state, so every `pulumi up`
reuses it and `pulumi destroy` forgets it. A dynamic provider keeps this in Python without
another provider plugin to build.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, Resource, ResourceProvider


class _SshKeyProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        # Imported here: the provider runs in its own process from a pickled copy.
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
        public = (
            key.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
            + f" {props['comment']}"
        )
        fingerprint = hashlib.sha256(public.encode()).hexdigest()[:16]
        outs = {**props, "private_key_openssh": private, "public_key_openssh": public}
        return CreateResult(id_=fingerprint, outs=outs)


class SshKeyPair(Resource):
    private_key_openssh: pulumi.Output[str]
    public_key_openssh: pulumi.Output[str]

    def __init__(self, name: str, comment: str, opts: pulumi.ResourceOptions | None = None) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=["private_key_openssh"])
        super().__init__(
            _SshKeyProvider(),
            name,
            {"comment": comment, "private_key_openssh": None, "public_key_openssh": None},
            pulumi.ResourceOptions.merge(opts, secret),
        )
