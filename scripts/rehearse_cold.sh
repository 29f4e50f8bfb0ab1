#!/usr/bin/env bash
# Rehearse the cold path: run the setup as a new user meets it on a brand-new machine, so a
# missing install step shows up here before a user meets it.
#   scripts/rehearse_cold.sh            setup, then twinlab's sshd started and stopped
#   scripts/rehearse_cold.sh --run      the README's first command (scripts/run.sh) instead
#   scripts/rehearse_cold.sh --keep     keep the scratch directory (for its logs)
# What is made fresh:
#   - a clone of this repository's HEAD (so no .venv, no stacks/.venv, no results);
#   - HOME (so ~/.cache/twinlab, ~/.local/state/twinlab and ~/.pulumi are empty: the Pulumi
#     toolchain, the images and the KVM probe are all redone);
#   - /run, in a private mount namespace: an empty tmpfs into which only the running daemons'
#     sockets are bound back, so runtime directories such as /run/sshd do not exist;
#   - PATH, a plain Debian root PATH: the Go in /usr/local/go is not on it, so the pinned Go
#     from PyPI is installed as on plain Debian 12 (whose own Go is too old);
#   - twinlab's sshd is started in a private network namespace of its own (loopback only), so
#     it can take 127.0.0.1:2222 even where one already runs.
#   - the container image's Docker repository (twinlab-rehearsal/webapp, removed at the end):
#     the Docker daemon is shared with the machine's own cache.
# What cannot be made fresh here: Debian packages already installed stay installed, and daemons
# already running are used (CI starts them from nothing). The Go module download cache is
# shared (GOMODCACHE), so modules are not downloaded again; everything is compiled again.
# Takes about as long as a cold setup (see README).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode=setup
keep=no
for arg in "$@"; do
    case "$arg" in
        --run) mode=run ;;
        --keep) keep=yes ;;
        *) echo "usage: scripts/rehearse_cold.sh [--run] [--keep]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "rehearse_cold: run as root (as the setup is)" >&2; exit 1; }

# Second stage, inside the private namespaces: hide /run, then run the job as a new user would.
if [ "${REHEARSAL_INSIDE:-}" = 1 ]; then
    scratch="$REHEARSAL_SCRATCH"
    old_run="$scratch/host-run"
    mkdir -p "$old_run"
    mount --bind /run "$old_run"
    mount -t tmpfs -o mode=755 twinlab-rehearsal-run /run
    # Sockets, state and pid files of the daemons already running come back (the setup signals
    # dockerd by its pid file to reload its runtimes); nothing else does.
    for entry in docker.sock docker docker.pid containerd libvirt libvirtd.pid virtlogd.pid lock; do
        [ -e "$old_run/$entry" ] || continue
        if [ -d "$old_run/$entry" ]; then mkdir "/run/$entry"; else touch "/run/$entry"; fi
        mount --rbind "$old_run/$entry" "/run/$entry"
    done
    [ ! -e /run/sshd ] || { echo "rehearse_cold: /run/sshd still visible" >&2; exit 1; }
    cd "$scratch/twinlab"
    job=(scripts/setup.sh)
    [ "$mode" = run ] && job=(scripts/run.sh)
    env -i HOME="$scratch/home" USER=root LOGNAME=root SHELL=/bin/bash TERM="${TERM:-dumb}" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        GOMODCACHE="$REHEARSAL_GOMODCACHE" LANG=C.UTF-8 \
        TWINLAB_IMAGE_REPOSITORY="$REHEARSAL_IMAGES" "${job[@]}"
    if [ "$mode" = setup ]; then
        # The `remote` stack's entry step, which the setup no longer runs for everyone.
        env -i HOME="$scratch/home" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            unshare --net -- sh -c \
            'ip link set lo up && scripts/remote_access.sh && scripts/remote_access.sh stop'
    fi
    exit 0
fi

# Under root's own cache, not /tmp or /var/tmp: sshd's StrictModes refuses keys below a
# directory everyone may write to.
mkdir -p "$HOME/.cache"
scratch="$(mktemp -d "$HOME/.cache/twinlab-rehearsal.XXXXXX")"
# The Docker daemon is shared: the rehearsal's images get a repository of their own, or its
# fresh cache and the real one would each re-import the same tag over the other's.
images=twinlab-rehearsal/webapp
cleanup() {
    docker image ls -q "$images" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
    if [ "$keep" = yes ]; then
        echo "rehearse_cold: scratch kept in $scratch"
    else
        rm -rf "$scratch"
    fi
}
trap cleanup EXIT
mkdir -p "$scratch/home"
git clone -q "$ROOT" "$scratch/twinlab"
# The commit under test, with uncommitted changes of tracked files too (a rehearsal of the
# working tree, as a developer would want before committing).
git -C "$ROOT" diff HEAD | git -C "$scratch/twinlab" apply --allow-empty
gomodcache="$(go env GOMODCACHE 2>/dev/null || echo "$HOME/go/pkg/mod")"
namespaces=(--mount --propagation private)
echo "rehearse_cold: $mode in $scratch (fresh clone, HOME, /run, PATH)"
started=$SECONDS
status=0
REHEARSAL_INSIDE=1 REHEARSAL_SCRATCH="$scratch" REHEARSAL_GOMODCACHE="$gomodcache" REHEARSAL_IMAGES="$images" \
    unshare "${namespaces[@]}" -- "$0" "$@" || status=$?
echo "rehearse_cold: $mode $([ $status -eq 0 ] && echo passed || echo "FAILED (exit $status)") in $((SECONDS - started)) s"
exit $status
