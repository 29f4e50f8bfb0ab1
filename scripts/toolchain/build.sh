#!/usr/bin/env bash
# Builds the Pulumi engine, the Python language host and the docker/libvirt providers from the
# Go module proxy (no other downloads reach these machines), installs the provider plugins into
# the Pulumi plugin cache, and prints TOOLCHAIN_BIN=<dir> as the last line of stdout.
#
# Progress goes to stderr, so `eval "$(scripts/toolchain/build.sh)"` works. Idempotent: a
# binary whose inputs (wrapper files, Go version, version) are unchanged is not rebuilt.
# Environment: TWINLAB_CACHE (default ~/.cache/twinlab), PULUMI_HOME (default ~/.pulumi).
set -Eeuo pipefail

readonly PULUMI_VERSION=3.259.0
readonly DOCKER_PROVIDER_VERSION=4.0.0
readonly LIBVIRT_PROVIDER_VERSION=0.5.4
readonly DISK_MIN_GIB=10

WRAPPERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly WRAPPERS_DIR
# The Go to build with, and the minimum the wrapper modules need (go.sh).
# shellcheck source=scripts/toolchain/go.sh
source "$WRAPPERS_DIR/go.sh"
readonly TOOL_ROOT="${TWINLAB_CACHE:-$HOME/.cache/twinlab}/toolchain/pulumi-v$PULUMI_VERSION"
readonly BIN_DIR="$TOOL_ROOT/bin"
readonly BUILD_DIR="$TOOL_ROOT/build"
readonly STAMP_DIR="$TOOL_ROOT/stamps"
readonly LOG_DIR="$TOOL_ROOT/logs"

export GOTOOLCHAIN=local CGO_ENABLED=0
# The docker provider's fork is published under another module path, so the checksum database
# has no entry for it; its hash is pinned in the committed go.sum instead.
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/kreuzwerker/terraform-provider-docker"

mkdir -p "$BIN_DIR" "$BUILD_DIR" "$STAMP_DIR" "$LOG_DIR"
LOG="$LOG_DIR/build-$(date +%Y%m%d-%H%M%S).log"
readonly LOG
: >"$LOG"
ln -sfn "$(basename "$LOG")" "$LOG_DIR/build.log"

START_S=$SECONDS
STEP=""
SUMMARY=()

say() { printf '%s\n' "$*" >&2; }

# step NAME: announce a step; every line carries the seconds elapsed since the start.
step() {
	STEP="$1"
	say "[toolchain +$((SECONDS - START_S))s] $STEP"
	printf '\n=== %s (+%ss)\n' "$STEP" "$((SECONDS - START_S))" >>"$LOG"
}

# die FIX...: stop with the current step's name and what to do about it.
die() {
	say "[toolchain] FAILED at step: $STEP"
	local line
	for line in "$@"; do say "  $line"; done
	exit 1
}

on_error() {
	say "[toolchain] FAILED at step: $STEP (exit $1)"
	say "  log: $LOG (last 30 lines below)"
	tail -n 30 "$LOG" >&2 || true
}
trap 'on_error $?' ERR

# ---------------------------------------------------------------------------- prerequisites

check_go() {
	step "check Go"
	command -v go >/dev/null ||
		die "\`go\` is not on PATH." \
			"Fix: run scripts/setup.sh (it installs Go $TWINLAB_GO_PINNED where none fits), or put Go >= $TWINLAB_GO_MIN first on PATH."
	twinlab_go_fits ||
		die "Go $(go env GOVERSION) is too old: the wrapper modules need Go >= $TWINLAB_GO_MIN (GOTOOLCHAIN=local)." \
			"Fix: run scripts/setup.sh (it installs Go $TWINLAB_GO_PINNED where none fits), or put Go >= $TWINLAB_GO_MIN first on PATH."
	GO_VERSION="$(go env GOVERSION)"
	GO_VERSION="${GO_VERSION#go}"
	say "  go $GO_VERSION at $(command -v go)"
}

check_disk() {
	step "check disk space"
	local dir free_kib
	for dir in "$TOOL_ROOT" "$(go env GOMODCACHE)" "$(go env GOCACHE)"; do
		mkdir -p "$dir"
		free_kib="$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')"
		if [ "$free_kib" -lt $((DISK_MIN_GIB * 1024 * 1024)) ]; then
			die "only $((free_kib / 1024 / 1024)) GiB free under $dir; the build needs $DISK_MIN_GIB GiB." \
				"Fix: free space there, or point TWINLAB_CACHE / GOMODCACHE / GOCACHE at a larger disk."
		fi
	done
}

# Fails with a clear message when the module proxy does not answer.
check_proxy() {
	step "check Go module proxy"
	local proxy
	proxy="$(go env GOPROXY | tr ',|' '\n' | grep -E '^https?://' | head -n 1 || true)"
	[ -n "$proxy" ] ||
		die "GOPROXY=$(go env GOPROXY) names no proxy, and the module cache lacks modules the build needs." \
			"Fix: set GOPROXY=https://proxy.golang.org (the only source of Go modules on these machines)."
	curl -fsS --max-time 20 -o /dev/null \
		"$proxy/github.com/pulumi/pulumi/sdk/v3/@v/v$PULUMI_VERSION.info" >>"$LOG" 2>&1 ||
		die "the Go module proxy $proxy does not answer." \
			"Fix: check network access to the proxy (or GOPROXY), then run this script again."
}

ensure_time() {
	TIME_CMD=()
	if [ ! -x /usr/bin/time ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		step "install /usr/bin/time (peak memory of each go build)"
		apt-get install -y -qq time >>"$LOG" 2>&1 || say "  could not install 'time'; peak memory not recorded"
	fi
	if [ -x /usr/bin/time ]; then TIME_CMD=(/usr/bin/time -v); fi
}

# ---------------------------------------------------------------------------- building

# A binary's stamp: every wrapper file, the Go version and the version built.
stamp_key() { # stamp_key WRAPPER VERSION
	{
		(cd "$1" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) |
			LC_ALL=C sort | xargs sha256sum)
		printf 'go %s\nversion %s\n' "$GO_VERSION" "$2"
	} | sha256sum | cut -d' ' -f1
}

is_current() { # is_current NAME KEY
	[ -x "$BIN_DIR/$1" ] && [ -f "$STAMP_DIR/$1" ] && [ "$(cat "$STAMP_DIR/$1")" = "$2" ]
}

PEAK_KIB=0

# keep_timing FILE: the few /usr/bin/time -v lines worth keeping, into the log.
keep_timing() {
	grep -E 'Command exited|Elapsed|Maximum resident|User time|System time|Exit status' "$1" |
		sed 's/^[[:space:]]*/  time: /' >>"$LOG" || true
}

# go_build OUT PKG LDFLAGS [TAGS]: one go build from the current directory, timed into the log.
go_build() {
	local out="$1" pkg="$2" ldflags="$3" tags="${4:-}" timing
	timing="$(mktemp)"
	local args=(build -trimpath -ldflags "$ldflags" -o "$out")
	if [ -n "$tags" ]; then args+=(-tags "$tags"); fi
	echo "+ go ${args[*]} $pkg" >>"$LOG"
	if [ ${#TIME_CMD[@]} -gt 0 ]; then
		"${TIME_CMD[@]}" -o "$timing" go "${args[@]}" "$pkg" >>"$LOG" 2>&1 ||
			{ keep_timing "$timing"; return 1; }
		keep_timing "$timing"
		local kib
		kib="$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$timing")"
		if [ "${kib:-0}" -gt "$PEAK_KIB" ]; then PEAK_KIB="$kib"; fi
	else
		go "${args[@]}" "$pkg" >>"$LOG" 2>&1
	fi
	rm -f "$timing"
}

# prepare NAME PKG...: a fresh copy of the wrapper module to build in (keeps the repository
# clean), with the modules those packages need in the module cache.
prepare() {
	local name="$1" dir="$BUILD_DIR/$1"
	shift
	rm -rf "$dir"
	mkdir -p "$dir"
	cp -R "$WRAPPERS_DIR/$name/." "$dir/"
	cd "$dir"
	# The providers embed schema.json, which tfgen writes later; a placeholder lets `go list` run.
	if grep -qs 'go:embed schema.json' main.go; then echo '{}' >schema.json; fi
	if GOPROXY=off go list -deps "$@" >/dev/null 2>>"$LOG"; then return 0; fi
	check_proxy
	step "$name: download modules"
	go list -deps "$@" >/dev/null 2>>"$LOG"
}

record() { # record NAME built|reused SECONDS
	local mib="-"
	if [ "$PEAK_KIB" -gt 0 ]; then mib="$((PEAK_KIB / 1024)) MiB"; fi
	SUMMARY+=("$(printf '%-26s %-7s %5ss  peak %s' "$1" "$2" "$3" "$mib")")
	echo "summary: $1 $2 ${3}s peak=$mib" >>"$LOG"
}

# build_binary NAME VERSION BUILDER: rebuild NAME with BUILDER unless its stamp is current.
NEED_CHECKS=1
build_binary() {
	local name="$1" version="$2" builder="$3" key started
	key="$(stamp_key "$WRAPPERS_DIR/$name" "$version")"
	if is_current "$name" "$key"; then
		step "$name: up to date (stamp $STAMP_DIR/$name)"
		PEAK_KIB=0
		record "$name" reused 0
		return 0
	fi
	if [ "$NEED_CHECKS" = 1 ]; then
		check_disk
		ensure_time
		NEED_CHECKS=0
	fi
	started=$SECONDS
	PEAK_KIB=0
	"$builder" "$version"
	cd "$WRAPPERS_DIR"
	echo "$key" >"$STAMP_DIR/$name"
	record "$name" built "$((SECONDS - started))"
}

build_pulumi() {
	prepare pulumi github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
	step "pulumi: go build (the longest step, minutes on 2 cores)"
	go_build "$BIN_DIR/.pulumi.new" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
		"-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$1" osusergo,grpcnotrace
	mv -f "$BIN_DIR/.pulumi.new" "$BIN_DIR/pulumi"
}

# The exec script and the dynamic-provider script ship in the sdk/v3 module zip, read-only and
# without the exec bit: copy them next to the language host.
install_python_scripts() {
	local sdk
	sdk="$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
	install -m 755 "$sdk/python/cmd/pulumi-language-python-exec" "$BIN_DIR/"
	install -m 755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$BIN_DIR/"
}

build_language_python() {
	prepare pulumi-language-python .
	step "pulumi-language-python: go build"
	go_build "$BIN_DIR/.pulumi-language-python.new" . "-s -w -X main.version=$1"
	install_python_scripts
	mv -f "$BIN_DIR/.pulumi-language-python.new" "$BIN_DIR/pulumi-language-python"
}

# Bridged providers: build tfgen, let it write schema.json, then build the provider that embeds it.
build_provider() { # build_provider PACKAGE VERSION
	local name="pulumi-resource-$1"
	prepare "$name" . ./tfgen
	step "$name: go build tfgen (schema generator)"
	go_build "./tfgen.bin" ./tfgen "-s -w -X main.version=$2"
	step "$name: generate schema.json"
	./tfgen.bin schema --out . >>"$LOG" 2>&1
	step "$name: go build"
	go_build "$BIN_DIR/.$name.new" . "-s -w -X main.version=$2"
	mv -f "$BIN_DIR/.$name.new" "$BIN_DIR/$name"
}
build_docker() { build_provider docker "$1"; }
build_libvirt() { build_provider libvirt "$1"; }

# vegeta: P1's open-loop, constant-rate load generator (scripts/checks/load/open_loop.py).
readonly VEGETA_VERSION=12.13.0
build_vegeta() {
	prepare vegeta github.com/tsenart/vegeta/v12
	step "vegeta: go build"
	go_build "$BIN_DIR/.vegeta.new" github.com/tsenart/vegeta/v12 "-s -w -X main.Version=v$1"
	mv -f "$BIN_DIR/.vegeta.new" "$BIN_DIR/vegeta"
}

# ---------------------------------------------------------------------------- reuse

# A pulumi of the right version elsewhere on PATH, with its language host beside it.
find_existing_pulumi() {
	local dir real
	local IFS=:
	for dir in $PATH; do
		if [ -z "$dir" ] || [ ! -x "$dir/pulumi" ]; then continue; fi
		real="$(readlink -f "$dir/pulumi")"
		case "$real" in "$TOOL_ROOT"/*) continue ;; esac
		[ -x "$(dirname "$real")/pulumi-language-python" ] || continue
		if [ "$("$real" version 2>/dev/null)" = "v$PULUMI_VERSION" ]; then
			printf '%s\n' "$(dirname "$real")"
			return 0
		fi
	done
	return 1
}

reuse_pulumi() { # reuse_pulumi DIR: link the engine and its Python host into our bin dir
	local dir="$1" file sdk=""
	step "reuse pulumi v$PULUMI_VERSION found at $dir (not building pulumi, pulumi-language-python)"
	for file in pulumi pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python; do
		if [ -e "$dir/$file" ]; then
			ln -sfn "$dir/$file" "$BIN_DIR/$file"
			continue
		fi
		# A script missing there (dynamic providers need pulumi-resource-pulumi-python) comes
		# from the sdk/v3 module zip instead.
		if [ -z "$sdk" ]; then
			sdk="$(cd "$TOOL_ROOT" && GOFLAGS=-mod=mod go mod download -json \
				"github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION" | awk -F'"' '/"Dir"/ { print $4 }')"
		fi
		install -m 755 "$(find "$sdk/python" -name "$file" -type f | head -n 1)" "$BIN_DIR/$file"
	done
	rm -f "$STAMP_DIR/pulumi" "$STAMP_DIR/pulumi-language-python"
	record pulumi reused 0
	record pulumi-language-python reused 0
}

# ---------------------------------------------------------------------------- plugins

register_plugin() { # register_plugin NAME VERSION
	local name="$1" version="$2" binary="$BIN_DIR/pulumi-resource-$1" installed
	installed="${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-$name-v$version/pulumi-resource-$name"
	if "$BIN_DIR/pulumi" plugin ls 2>>"$LOG" | awk '{ print $1, $2, $3 }' |
		grep -qx "$name resource $version"; then
		if cmp -s "$binary" "$installed"; then
			step "plugin $name $version: already registered"
			return 0
		fi
		step "plugin $name $version: registered binary differs, reinstalling"
		"$BIN_DIR/pulumi" plugin install resource "$name" "$version" --file "$binary" --reinstall \
			>>"$LOG" 2>&1
		return 0
	fi
	step "plugin $name $version: register with the engine"
	"$BIN_DIR/pulumi" plugin install resource "$name" "$version" --file "$binary" >>"$LOG" 2>&1
}

# ---------------------------------------------------------------------------- main

main() {
	exec 9>"$TOOL_ROOT/.lock"
	step "wait for other runs of this script (lock $TOOL_ROOT/.lock)"
	flock 9
	say "  log: $LOG"

	check_go
	local existing
	if existing="$(find_existing_pulumi)"; then
		reuse_pulumi "$existing"
	else
		build_binary pulumi "$PULUMI_VERSION" build_pulumi
		build_binary pulumi-language-python "$PULUMI_VERSION" build_language_python
	fi
	build_binary pulumi-resource-docker "$DOCKER_PROVIDER_VERSION" build_docker
	build_binary pulumi-resource-libvirt "$LIBVIRT_PROVIDER_VERSION" build_libvirt
	build_binary vegeta "$VEGETA_VERSION" build_vegeta

	export PULUMI_SKIP_UPDATE_CHECK=true
	step "check pulumi version"
	local got
	got="$("$BIN_DIR/pulumi" version)"
	[ "$got" = "v$PULUMI_VERSION" ] ||
		die "$BIN_DIR/pulumi reports '$got', expected v$PULUMI_VERSION." \
			"Fix: delete $TOOL_ROOT and run this script again."
	register_plugin docker "$DOCKER_PROVIDER_VERSION"
	register_plugin libvirt "$LIBVIRT_PROVIDER_VERSION"

	step "done in $((SECONDS - START_S))s"
	local line
	for line in "${SUMMARY[@]}"; do say "  $line"; done
	printf 'TOOLCHAIN_BIN=%s\n' "$BIN_DIR"
}

main "$@"
