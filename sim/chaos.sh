#!/usr/bin/env bash
# Runs every chaos scenario against a fresh local cluster and prints one table row per
# scenario: its verdict (pass; "pass (caught)" for the deliberately unsafe one, whose
# loss the checker must report), operations acknowledged, acknowledged writes lost,
# deletes resurrected, failed requests, time from the last heal until every replica
# agreed, availability per region while the faults were on, the worst region's p99
# while the faults were on of reads (kv and session) / session document writes /
# logins; then, from the session clients every scenario runs
# beside the kv ones, the session invariants (revoked tokens accepted / acknowledged
# cart adds missing / live tokens refused) and the share of session operations that
# succeeded per region while the faults were on; then, from the RESP (Redis protocol)
# clients every scenario also runs, the RESP invariants (acknowledged writes lost /
# deleted values resurrected / counters out of their bounds / reads behind the
# reader's own acknowledged writes) and what they did (operations answered /
# attempted, their p99, keys with an acknowledged write read back); and the clients'
# retries / failovers (attempts after a request's first / nodes they stopped answering
# and were left). A broken session or RESP invariant fails the scenario like a lost
# write. Exits non-zero if any scenario misses its expected outcome.
#
#   sim/chaos.sh            the short form (each scenario as written, ~10 min)
#   sim/chaos.sh --long     soaks: every scenario's workload runs 10 minutes
#   sim/chaos.sh NAME...    only these scenarios (e.g. node-crash pause)
#
# CARTWHEEL=path picks the binary (default: a release build, made if missing);
# CHAOS_OUT=dir keeps the JSON summaries, SVG timelines and logs (default: a temp dir).
set -uo pipefail
cd "$(dirname "$0")/.."

SCENARIOS=(node-crash region-outage region-partition one-way-partition pause slow-node
  rolling-restart clock-skew disk-wipe lossy-network join-under-load
  leave-under-load unsafe-w1)
extra=()
picked=()
for arg in "$@"; do
  case "$arg" in
    --long) extra=(--duration 10m) ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    -*) echo "chaos.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    *) picked+=("$arg") ;;
  esac
done
[ ${#picked[@]} -gt 0 ] && SCENARIOS=("${picked[@]}")

if [ -z "${CARTWHEEL:-}" ]; then
  cargo build --release --locked --quiet || exit 1
  CARTWHEEL=target/release/cartwheel
fi
out=${CHAOS_OUT:-$(mktemp -d)}
mkdir -p "$out"
# One run at a time on a machine: two at once share its cores and measure each other.
exec 9>"${TMPDIR:-/tmp}/cartwheel-chaos.lock"
if ! flock -n 9; then
  echo "chaos.sh: another chaos.sh is running on this machine; wait for it" >&2
  exit 2
fi

rows=()
failed=0
for name in "${SCENARIOS[@]}"; do
  file="sim/$name.toml"
  if [ ! -f "$file" ]; then
    echo "chaos.sh: no scenario $file" >&2
    failed=1
    continue
  fi
  echo "== $name" >&2
  "$CARTWHEEL" sim --scenario "$file" --json "$out/$name.json" --svg "$out/$name.svg" \
    "${extra[@]}" >"$out/$name.log" 2>&1
  status=$?
  row=$(grep -a '^row: ' "$out/$name.log" | tail -n 1 | sed 's/^row: //')
  if [ -z "$row" ]; then
    row="| $name | FAIL (no result, exit $status; see $out/$name.log) | | | | | | | | | | | | | |"
  fi
  if [ $status -ne 0 ]; then
    failed=1
    tail -n 20 "$out/$name.log" >&2
  fi
  rows+=("$row")
done

echo
echo "| scenario | verdict | ops acked | lost | resurrected | failed requests | converged after heal | ops ok during faults | worst p99 during faults: read / user write / login ms | sessions: revoked accepted / cart adds missing / valid refused | session ops ok during faults | RESP: lost / resurrected / counters out of range / reads behind own writes | RESP ops answered / attempted, p99, keys checked | retries / failovers | feed: missed / behind |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
echo
echo "summaries, timelines and logs: $out"
exit $failed
