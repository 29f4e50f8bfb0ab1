"""Kernel command line assembly, the one builder: the image's base line plus the deployment's SSH
key and, for a deployed VM, the app's environment. The VM component (components/vm.py) only
reshapes this line into the map form pulumi-libvirt reads back."""

from __future__ import annotations

import base64
import binascii

SSH_KEY_PARAM = "twinlab.ssh_key"
# The app's EnvironmentFile, base64 (a oneshot unit in the guest decodes it before the app).
ENV_PARAM = "twinlab.env"
# x86 COMMAND_LINE_SIZE is 2048 bytes including the terminating NUL.
CMDLINE_MAX_BYTES = 2047
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


class BadSshKeyError(ValueError):
    """The public key cannot go on the kernel command line."""


def check_public_key(public_key: str) -> str:
    """The key as one OpenSSH line (type, base64 blob, optional comment), else BadSshKeyError."""
    line = public_key.strip()
    if "\n" in line or "\r" in line:
        raise BadSshKeyError("SSH public key must be a single line (one key, OpenSSH format)")
    fields = line.split()
    if len(fields) < 2 or fields[0] not in KEY_TYPES:
        raise BadSshKeyError(
            f"not an OpenSSH public key: {line[:40]!r}...; pass the .pub file's content "
            "(e.g. from ssh-keygen -t ed25519)"
        )
    try:
        base64.b64decode(fields[1], validate=True)
    except binascii.Error:
        raise BadSshKeyError(f"the key blob of {fields[0]} key is not valid base64") from None
    return line


def encode_ssh_key(public_key: str) -> str:
    return base64.b64encode(check_public_key(public_key).encode()).decode()


def decode_ssh_key(encoded: str) -> str:
    """Inverse of encode_ssh_key (what the guest's twinlab-ssh-key does)."""
    return base64.b64decode(encoded, validate=True).decode()


def cmdline_with_ssh_key(
    base_cmdline: str, public_key: str, environment_file: str | None = None
) -> str:
    """The full kernel command line for a VM whose user `twin` accepts `public_key` and, if
    given, whose app gets `environment_file` (a systemd EnvironmentFile's text)."""
    for param in (SSH_KEY_PARAM, ENV_PARAM):
        if param + "=" in base_cmdline:
            raise ValueError(f"base kernel command line already has {param}=")
    line = f"{base_cmdline.strip()} {SSH_KEY_PARAM}={encode_ssh_key(public_key)}"
    if environment_file is not None:
        line += f" {ENV_PARAM}={base64.b64encode(environment_file.encode()).decode()}"
    if len(line.encode()) > CMDLINE_MAX_BYTES:
        raise BadSshKeyError(
            f"kernel command line would be {len(line.encode())} bytes, over the "
            f"{CMDLINE_MAX_BYTES}-byte limit: use an ed25519 key (ssh-keygen -t ed25519)"
            + ("" if environment_file is None else " and keep twinlab:env short")
        )
    return line
