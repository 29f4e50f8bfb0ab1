#!/usr/bin/env bash
# The main job: set up, stand up both variants (`pulumi up`), run every check, write the
# report, tear everything down (`pulumi destroy`).
#   scripts/run.sh [--stack NAME] [--keep]
#     --stack NAME   stack to use (default dev; created from stacks/Pulumi.NAME.yaml if new)
#     --keep         leave the stack up after the checks
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
stack=dev
keep=()
while [ $# -gt 0 ]; do
    case "$1" in
        --stack) stack="$2"; shift 2 ;;
        --keep) keep=(--keep); shift ;;
        *) echo "usage: scripts/run.sh [--stack NAME] [--keep]" >&2; exit 2 ;;
    esac
done
scripts/setup.sh
source scripts/env.sh
exec fab up-and-check --stack "$stack" "${keep[@]}"
