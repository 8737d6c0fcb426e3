#!/usr/bin/env bash
# The abuse suite: starts a fresh cluster of regions/abuse.toml (two regions of two
# nodes, on 127.0.0.1), attacks it as a hostile client or peer would, and prints one
# row per attack with what was measured (see README, "Security"); stops the cluster and
# exits non-zero if any attack got through.
#
#   sim/abuse.sh                    the full form (64 x 1 GiB uploads per route, 2,000
#                                   slowloris connections, a 20 s token flood, ...)
#   sim/abuse.sh --short            the short form the test suite runs (~1 min)
#   sim/abuse.sh --only uploads,slowloris    some attacks only
#
# CARTWHEEL=path picks the binary (default: a release build, made if missing);
# ABUSE_OUT=dir keeps the cluster directory (logs) and the JSON rows (default: a temp
# dir, removed after a run that passed). Extra node flags go in ABUSE_NODE_FLAGS.
set -uo pipefail
cd "$(dirname "$0")/.."
source sim/lib.sh

args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --short) args+=(--short) ;;
    --only) args+=(--only "$2"); shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "abuse.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cartwheel_binary abuse.sh
out=${ABUSE_OUT:-$(mktemp -d)}
mkdir -p "$out"
dir="$out/cluster"
# shellcheck disable=SC2086
if ! "$CARTWHEEL" cluster up --dir "$dir" --topology regions/abuse.toml ${ABUSE_NODE_FLAGS:-} \
  >"$out/cluster-up.log" 2>&1; then
  echo "abuse.sh: cluster up failed:" >&2
  cat "$out/cluster-up.log" >&2
  exit 1
fi
"$CARTWHEEL" abuse --dir "$dir" --json "$out/abuse.json" "${args[@]}"
status=$?
"$CARTWHEEL" cluster down --dir "$dir" >/dev/null 2>&1
if [ $status -ne 0 ]; then
  echo "abuse.sh: an attack got through; logs in $dir/logs" >&2
elif [ -z "${ABUSE_OUT:-}" ]; then
  rm -rf "$out"
fi
exit $status
