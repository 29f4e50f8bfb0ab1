"""What pulumi-libvirt 0.5.4 does with a qemu+ssh:// URI, and the checks that turn each of its
surprises into a clear error before anything is created.

pulumi-libvirt 0.5.4 wraps terraform-provider-libvirt 0.8.3, whose line is closed upstream, so
these stay. Its SSH client is Go's (libvirt/uri/ssh.go), not the `ssh` binary libvirt's own
clients run, and it reads the URI and ~/.ssh/config its own way:

- port: a `Port` that ~/.ssh/config sets for the host (a `Host *` default too) wins over the
  port in the URI (OpenSSH does the opposite);
- user: ~/.ssh/config's `User` is never applied, so a URI without USER@ logs in as "";
- ProxyCommand in ~/.ssh/config is ignored (ProxyJump is followed): it would connect directly;
- keyfile: a key it cannot read or parse (a passphrase-protected one: it has no prompt) is only
  logged, and the login then fails as "unable to authenticate";
- sshauth: `agent`, `privkey` and `ssh-password` only; any other word is only logged;
- host keys: `knownhosts` (libvirt's own clients spell it `known_hosts`) must name an existing
  file that already holds the host's key: there is no trust on first use;
- no_verify: present at all, even `no_verify=0`, turns host-key checking off (libvirt's own
  clients read 0 as "check").

`components/remote_ssh.py` builds the URI the provider gets; `provider_uri_problems` lists what
would go wrong with it, from the URI, the user's ~/.ssh/config and the key files.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import paramiko

from components.errors import ConfigError

# The provider's auth methods (libvirt/uri/ssh.go parseAuthMethods).
PROVIDER_SSH_AUTH = ("agent", "privkey", "ssh-password")
DEFAULT_SSH_PORT = 22


def user_ssh_config_path() -> Path:
    """The one ssh config file the provider reads: ${HOME}/.ssh/config (never /etc/ssh)."""
    return Path(os.path.expandvars("${HOME}")) / ".ssh" / "config"


def key_problem(path: str) -> str | None:
    """Why a private key cannot be used without a prompt, or None. `ssh-keygen -y -P ''` reads
    it the way a client without a terminal has to: missing, unreadable, too open, encrypted."""
    if not os.path.isfile(path):
        return f"key file {path} does not exist"
    try:
        done = subprocess.run(
            ["ssh-keygen", "-y", "-P", "", "-f", path],
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"ssh-keygen cannot read {path}: {error}"
    if done.returncode == 0:
        return None
    why = (done.stderr.strip().splitlines() or ["unreadable"])[-1]
    if "passphrase" in why.lower() or "incorrect" in why.lower():
        why = "it is protected by a passphrase, and the providers have no prompt"
    return f"key {path} cannot be used: {why}"


def provider_uri_problems(
    uri: str,
    ssh_config_text: str = "",
    key_problem_of: Callable[[str], str | None] = key_problem,
    known_host_present: Callable[[str, str, int], bool] | None = None,
) -> list[str]:
    """What would make pulumi-libvirt 0.5.4 fail, or connect elsewhere than the URI says, with
    this (provider) URI; empty for URIs other than qemu+ssh://."""
    parts = urlsplit(uri)
    if parts.scheme != "qemu+ssh":
        return []
    known_host_present = known_host_present or has_known_host
    problems: list[str] = []
    host = parts.hostname or ""
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if not parts.username:
        problems.append(
            "name the SSH user in the URI (qemu+ssh://USER@HOST/system): pulumi-libvirt 0.5.4 "
            "ignores ~/.ssh/config's User and would log in with an empty user name"
        )
    config = paramiko.SSHConfig.from_text(ssh_config_text).lookup(host)
    uri_port = parts.port or DEFAULT_SSH_PORT
    if "port" in config and int(config["port"]) != uri_port:
        problems.append(
            f"~/.ssh/config sets Port {config['port']} for {host}, which pulumi-libvirt 0.5.4 "
            f"uses instead of the URI's port {uri_port}; give that host another alias in the "
            "URI, or make the two agree"
        )
    if "proxycommand" in config:
        problems.append(
            f"~/.ssh/config sets a ProxyCommand for {host}, which pulumi-libvirt 0.5.4 ignores "
            "(it would connect directly); use ProxyJump, which it follows"
        )
    methods = [m for m in query.get("sshauth", "agent,privkey").split(",") if m]
    unknown = [m for m in methods if m not in PROVIDER_SSH_AUTH]
    if unknown or not methods:
        problems.append(
            f"sshauth={query.get('sshauth', '')}: pulumi-libvirt 0.5.4 knows only "
            f"{', '.join(PROVIDER_SSH_AUTH)} (it skips other words, then cannot log in)"
        )
    if "privkey" in methods and "keyfile" in query:
        why = key_problem_of(query["keyfile"])
        if why is not None:
            problems.append(f"keyfile: {why}")
    if "no_verify" in query and query["no_verify"] != "1":
        problems.append(
            f"no_verify={query['no_verify']}: pulumi-libvirt 0.5.4 stops checking host keys "
            "when no_verify is present at all, whatever its value; remove it (or say no_verify=1)"
        )
    if "no_verify" not in query and query.get("known_hosts_verify") != "ignore":
        known_hosts = (
            query.get("knownhosts")
            or str(config.get("userknownhostsfile", "${HOME}/.ssh/known_hosts")).split()[0]
        )
        known_hosts = os.path.expanduser(os.path.expandvars(known_hosts))
        if not known_host_present(known_hosts, host, uri_port):
            problems.append(
                f"{known_hosts} holds no host key for {host} port {uri_port}, and "
                "pulumi-libvirt 0.5.4 cannot add one (no trust on first use): connect once "
                "with ssh, or check the host's key and add it there"
            )
    return problems


def has_known_host(known_hosts: str, host: str, port: int) -> bool:
    """Whether `known_hosts` exists and holds a key for host:port (hashed entries too)."""
    if not os.path.isfile(known_hosts):
        return False
    name = host if port == DEFAULT_SSH_PORT else f"[{host}]:{port}"
    done = subprocess.run(
        ["ssh-keygen", "-F", name, "-f", known_hosts],
        capture_output=True,
        text=True,
        timeout=10,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode == 0


def read_user_ssh_config() -> str:
    try:
        return user_ssh_config_path().read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def require_usable_provider_uri(provider_uri: str, config_key: str = "libvirtUri") -> None:
    """Raise ConfigError naming each problem `provider_uri_problems` finds (run after the
    daemon checks, whose ssh records a new host's key in twinlab's known_hosts)."""
    problems = provider_uri_problems(provider_uri, read_user_ssh_config())
    if problems:
        shown = provider_uri.split("?")[0]
        raise ConfigError([f"twinlab:{config_key} ({shown}): {why}" for why in problems])
