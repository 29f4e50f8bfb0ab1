# Source this file to use twinlab's Pulumi engine, state backend and Python environment:
#     source scripts/env.sh
# It changes nothing on disk except creating a local passphrase file on first use.
# A user's own PULUMI_BACKEND_URL / PULUMI_CONFIG_PASSPHRASE(_FILE) / pulumi install win.

TWINLAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TWINLAB_ROOT
export TWINLAB_CACHE="${TWINLAB_CACHE:-$HOME/.cache/twinlab}"
export TWINLAB_STATE="${TWINLAB_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/twinlab}"
export TWINLAB_PULUMI_VERSION="v3.259.0"
export TWINLAB_TOOLCHAIN_BIN="$TWINLAB_CACHE/toolchain/pulumi-$TWINLAB_PULUMI_VERSION/bin"
# Go for the toolchain build: the PATH's if new enough, else the pinned one the setup installs.
# shellcheck source=scripts/toolchain/go.sh
source "$TWINLAB_ROOT/scripts/toolchain/go.sh"

# Use an installed pulumi of the pinned version if there is one; else the one setup built.
if [ "$(pulumi version 2>/dev/null)" != "$TWINLAB_PULUMI_VERSION" ]; then
    case ":$PATH:" in
        *":$TWINLAB_TOOLCHAIN_BIN:"*) ;;
        *) export PATH="$TWINLAB_TOOLCHAIN_BIN:$PATH" ;;
    esac
fi
# The venv's python first: the Pulumi program, Fabric and pytest all run from it.
case ":$PATH:" in
    *":$TWINLAB_ROOT/.venv/bin:"*) ;;
    *) export PATH="$TWINLAB_ROOT/.venv/bin:$PATH" ;;
esac

# Local state, no account, no service.
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$TWINLAB_STATE/pulumi}"
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    if [ ! -s "$TWINLAB_STATE/passphrase" ]; then
        mkdir -p "$TWINLAB_STATE" && chmod 700 "$TWINLAB_STATE"
        (umask 077 && head -c 32 /dev/urandom | base64 >"$TWINLAB_STATE/passphrase")
    fi
    export PULUMI_CONFIG_PASSPHRASE_FILE="$TWINLAB_STATE/passphrase"
fi
case "$PULUMI_BACKEND_URL" in
    file://*) mkdir -p "${PULUMI_BACKEND_URL#file://}" ;;
esac
# Nothing may be downloaded: a missing plugin must fail at once, by name.
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_SKIP_CONFIRMATIONS=true
# Providers come from the plugin cache (setup registers them), not from PATH.
export PULUMI_IGNORE_AMBIENT_PLUGINS=true
