#!/usr/bin/env bash
# One node at fleet scale (issue 25): KEYS sessions on a single node, written the way a
# Redis session middleware writes them, and what that costs. The topology is
# regions/single.toml: one region of one node, N = 1, so that one node holds every key
# (a node of a real fleet holds N / nodes of the keys; see README "Capacity model").
#
# Sessions are RESP `SET sess:<id> <blob> EX <ttl>`, as connect-redis stores an
# express-session (prefix `sess:`, a 32-character uid-safe id, JSON of the cookie, a CSRF
# secret, a passport user and a small cart): VALUE_BYTES of 512 is such a session of a
# logged-in user with a few cart lines. The loader is sim/fleet_footprint.py (python3,
# pipelined over a few raw RESP connections): redis-benchmark cannot write distinct
# sequential keys with EX, and `cartwheel bench` has no TTL.
#
# Steps and what each reports:
#   1. EXPIRED sessions with `EX EXPIRED_TTL` (5 s), then KEYS sessions with `EX TTL`
#      (1 day, connect-redis's default): load rate (sessions/s, wall time, node CPU per
#      SET), the node's RSS (peak and at the end) and its /v1/status keys and disk.
#   2. Random GETs of loaded sessions for READ_SECONDS: reads/s and CPU per read at size.
#   3. SIGTERM, then the data directory's bytes (flushed): per session and x raw.
#   4. Restart with the same command line: time to its ready file, to a RESP GET that
#      answers the session, to HTTP `/v1/status`, and to a `/v1/status` field saying the
#      Merkle trees are rebuilt if the build has one ("not reported" otherwise); its CPU
#      until serving, its RSS, and its idle CPU.
#   5. The sweep: the node is restarted (a second restart sample) with the sweeper on
#      and unthrottled, and the script waits until `/v1/status` sessions.swept counts
#      EXPIRED removals: time, sessions/s, node CPU and CPU per swept session. The
#      sweeper erases nothing until its deadline is SWEEP_CLOCK_MARGIN_MS (10 min, from
#      src/limits.rs) behind the node's clock, so the script waits for that first (a
#      20 M load outlasts it); --backdate writes the expired sessions with PXAT already
#      past the margin instead, to try the script quickly.
# The sweeper is off (--sweep-rate 0) during steps 1-4 so that its scans do not mix
# into the load and restart figures. In step 5 it runs with --sweep-rate 1000000 and
# --sweep-interval 100ms (defaults: 100 records/s, every 60 s): the rate is a pause of
# 1/rate s per record, a tokio timer of 1 ms resolution, so above ~1,000/s it no longer
# throttles; the interval is the idle gap between passes of up to 1,000 records.
#
# The disk needed, (KEYS + EXPIRED) x (key + value) x DISK_FACTOR, is printed first and
# the run refused if the filesystem of --work-dir has less free.
#
# Options: --keys N (20000000)  --expired N (1000000)  --value-bytes B (512)
#          --ttl S (86400)  --expired-ttl S (5)  --backdate  --read-seconds S (10)
#          --connections N (8)  --pipeline N (32)  --cache-mb M (node default)
#          --restart-at N,N,...  --skip-sweep  --keep
#          --work-dir DIR (a new temp dir under $TMPDIR, removed at the end)
#          --json FILE (every figure, as JSON)
# --restart-at restarts the node (as in step 4) when the live load reaches each N below
# KEYS too, so one run gives restart-to-serving at several sizes (1 M, 10 M, 20 M).
# --skip-sweep leaves out step 5; --keep leaves the node running and its directory in
# place at the end (printed), for a later step by hand such as the sweep under another
# build: python3 sim/fleet_footprint.py restart --binary NEW --pid P ... (its --help).
# CARTWHEEL=path picks the binary (default: cargo build --release). Loopback only;
# every process started is stopped on exit, by its pid.
set -uo pipefail
cd "$(dirname "$0")/.."
SCRIPT=fleet-footprint.sh
KEYS=20000000 EXPIRED=1000000 VALUE_BYTES=512 TTL=86400 EXPIRED_TTL=5 BACKDATE=""
READ_SECONDS=10 CONNECTIONS=8 PIPELINE=32 CACHE_MB="" WORK_ROOT="${TMPDIR:-/tmp}" JSON_OUT=""
RESTART_AT="" SKIP_SWEEP="" KEEP=""
# Disk per raw byte assumed up front: 2.44-2.51 x measured at 250 K sessions of 512 B
# (footprint.sh: 1.90-1.93 x at 1 KiB values), and room for sled's segments in flight.
DISK_FACTOR=3
# Bounds of the waits: a restart until its Merkle trees are rebuilt (that scales with
# the keys: 9-27 µs a key at 250 K on a busy machine), a stall of
# the sweep, and the whole sweep.
RESTART_TIMEOUT_S=3600 SWEEP_STALL_S=180
while [ $# -gt 0 ]; do
  case "$1" in
    --keys) KEYS=${2:?}; shift 2 ;;
    --expired) EXPIRED=${2:?}; shift 2 ;;
    --value-bytes) VALUE_BYTES=${2:?}; shift 2 ;;
    --ttl) TTL=${2:?}; shift 2 ;;
    --expired-ttl) EXPIRED_TTL=${2:?}; shift 2 ;;
    --backdate) BACKDATE=1; shift ;;
    --read-seconds) READ_SECONDS=${2:?}; shift 2 ;;
    --connections) CONNECTIONS=${2:?}; shift 2 ;;
    --pipeline) PIPELINE=${2:?}; shift 2 ;;
    --cache-mb) CACHE_MB=${2:?}; shift 2 ;;
    --work-dir) WORK_ROOT=${2:?}; shift 2 ;;
    --json) JSON_OUT=${2:?}; shift 2 ;;
    --restart-at) RESTART_AT=${2:?}; shift 2 ;;
    --skip-sweep) SKIP_SWEEP=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,51p' "$0"; exit 0 ;;
    *) echo "$SCRIPT: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
checkpoints=()
for n in ${RESTART_AT//,/ }; do
  case "$n" in ''|*[!0-9]*) echo "$SCRIPT: --restart-at takes counts ($n)" >&2; exit 2 ;; esac
  [ "$n" -gt 0 ] && [ "$n" -lt "$KEYS" ] || { echo "$SCRIPT: --restart-at $n is not between 0 and --keys" >&2; exit 2; }
  checkpoints+=("$n")
done
for n in "$KEYS" "$EXPIRED" "$VALUE_BYTES" "$TTL" "$EXPIRED_TTL" "$READ_SECONDS" "$CONNECTIONS" "$PIPELINE"; do
  case "$n" in ''|*[!0-9]*) echo "$SCRIPT: counts and times are whole numbers ($n)" >&2; exit 2 ;; esac
done
[ "$KEYS" -ge 1 ] || { echo "$SCRIPT: --keys must be at least 1" >&2; exit 2; }
# shellcheck source=sim/lib.sh
. sim/lib.sh
cartwheel_binary "$SCRIPT"
helper=(python3 sim/fleet_footprint.py)
margin_ms=$(sed -n 's/^pub const SWEEP_CLOCK_MARGIN_MS: u64 = \([0-9 *]*\);/\1/p' src/limits.rs)
margin_s=$(( ${margin_ms:-600000} / 1000 ))

key_bytes=37 # "sess:" + 32
total=$((KEYS + EXPIRED))
raw=$((total * (key_bytes + VALUE_BYTES)))
need=$((raw * DISK_FACTOR))
mkdir -p "$WORK_ROOT" || exit 1
avail=$(( $(df -Pk "$WORK_ROOT" | awk 'NR == 2 {print $4}') * 1024 ))
printf '%s: %d sessions (%d live + %d to expire) x (%d key + %d value) = %.2f GiB raw;\n' \
  "$SCRIPT" "$total" "$KEYS" "$EXPIRED" "$key_bytes" "$VALUE_BYTES" "$(echo "$raw / 2^30" | bc -l)"
printf '  disk needed up to %.2f GiB (%d x raw), %.2f GiB free under %s\n' \
  "$(echo "$need / 2^30" | bc -l)" "$DISK_FACTOR" "$(echo "$avail / 2^30" | bc -l)" "$WORK_ROOT"
if [ "$avail" -lt "$need" ]; then
  echo "$SCRIPT: not enough free disk under $WORK_ROOT (pick another with --work-dir)" >&2
  exit 1
fi

work=$(mktemp -d "$WORK_ROOT/fleet-footprint.XXXXXX")
dir=$work/cluster
node_pid=""
cleanup() {
  if [ -n "$KEEP" ]; then
    echo "kept: node pid $(cat "$work/node.pid" 2>/dev/null), directory $work"
    return
  fi
  # The node's pid changes at each restart: stop the one running, by its pid.
  [ -f "$work/node.pid" ] && node_pid=$(cat "$work/node.pid")
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill "$node_pid" 2>/dev/null
    for _ in $(seq 1 300); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$node_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, d))" "$@"; }

up_args=(--sweep-rate 0)
[ -n "$CACHE_MB" ] && up_args+=(--cache-mb "$CACHE_MB")
"$CARTWHEEL" cluster up --dir "$dir" --topology regions/single.toml "${up_args[@]}" >"$work/up.txt" 2>&1 \
  || { cat "$work/up.txt"; exit 1; }
node_pid=$(grep -o 'pid [0-9]*' "$work/up.txt" | awk '{print $2}')
echo "$node_pid" >"$work/node.pid"
resp=$(grep -o 'resp [0-9.:]*' "$work/up.txt" | awk '{print $2}')
node=$(awk '/ single /{print $1; exit}' "$work/up.txt")
[ -n "$node_pid" ] && [ -n "$resp" ] && [ -n "$node" ] || { cat "$work/up.txt"; exit 1; }
common=(--resp "$resp" --value-bytes "$VALUE_BYTES" --connections "$CONNECTIONS" --pipeline "$PIPELINE")

# 1. The load: the sessions to expire first (their ids after the live ones'), then the live.
if [ "$EXPIRED" -gt 0 ]; then
  if [ -n "$BACKDATE" ]; then
    expiry=(--pxat-ago-ms $(( (margin_s + 60) * 1000 )))
    echo "writing $EXPIRED sessions already expired (PXAT $((margin_s + 60)) s ago: --backdate)"
  else
    expiry=(--ttl "$EXPIRED_TTL")
    echo "writing $EXPIRED sessions with EX $EXPIRED_TTL"
  fi
  "${helper[@]}" load "${common[@]}" --pid "$node_pid" --start "$KEYS" --count "$EXPIRED" \
    "${expiry[@]}" >"$work/expired.json" || exit 1
fi
first_key="sess:$(python3 -c "import sys; sys.path.insert(0, 'sim'); import fleet_footprint as f; print(f.session_id(0).decode())")"
restart() { # output-file idle-seconds NAME=VALUE...
  local out=$1 idle=$2 sets=()
  shift 2
  for s in "$@"; do sets+=(--set "$s"); done
  "${helper[@]}" restart --pid "$(cat "$work/node.pid")" --pid-file "$work/node.pid" \
    --log "$dir/logs/$node.log" --get-key "$first_key" --get-index 0 --value-bytes "$VALUE_BYTES" \
    --timeout "$RESTART_TIMEOUT_S" --idle-s "$idle" --measure-dir "$dir/data/$node" "${sets[@]}" >"$out" || exit 1
}
loaded=0
for checkpoint in "${checkpoints[@]}" "$KEYS"; do
  [ "$checkpoint" -gt "$loaded" ] || continue
  echo "loading sessions $loaded..$checkpoint with EX $TTL"
  "${helper[@]}" load "${common[@]}" --pid "$(cat "$work/node.pid")" --start "$loaded" \
    --count $((checkpoint - loaded)) --ttl "$TTL" >"$work/load-$checkpoint.json" || exit 1
  loaded=$checkpoint
  if [ "$checkpoint" -lt "$KEYS" ]; then
    echo "restarting the node at $checkpoint sessions"
    restart "$work/restart-at-$checkpoint.json" 0
    # A restarted node may listen on new ports: dial what its ready file says.
    common[1]=$(json "$dir/ready/$node.json" resp)
  fi
done
node_pid=$(cat "$work/node.pid")
# The load's figures over every chunk: the rate from the summed time, CPU per request
# weighted by requests, the highest RSS.
python3 - "$work" "$KEYS" "${checkpoints[@]}" >"$work/load.json" <<'P'
import json, os, sys
work, keys, marks = sys.argv[1], int(sys.argv[2]), [int(m) for m in sys.argv[3:]]
parts = [json.load(open(os.path.join(work, f"load-{m}.json"))) for m in sorted(set(marks + [keys]))]
requests = sum(p["requests"] for p in parts)
seconds = sum(p["seconds"] for p in parts)
merged = dict(parts[-1])
merged.update(requests=requests, seconds=seconds, rate_per_s=requests / max(seconds, 1e-9),
              errors=sum(p["errors"] for p in parts),
              rss_kib_peak=max(p["rss_kib_peak"] for p in parts),
              node_cpu_us_per_request=sum(p["node_cpu_us_per_request"] * p["requests"] for p in parts) / max(requests, 1))
merged["first_error"] = next((p.get("first_error") for p in parts if p.get("first_error")), None)
print(json.dumps(merged))
P
curl -sf --max-time 10 "http://$(json "$dir/ready/$node.json" http)/v1/status" >"$work/status-loaded.json" || exit 1

# 2. Reads at size.
if [ "$READ_SECONDS" -gt 0 ]; then
  "${helper[@]}" get "${common[@]}" --pid "$node_pid" --count "$KEYS" --seconds "$READ_SECONDS" >"$work/get.json" || exit 1
fi

# 3 and 4. The helper reads the node's command line, stops it (SIGTERM: it flushes),
# counts the data directory's bytes, starts it again and times it until it serves.
rss_loaded=$(awk '/^VmRSS/ {print $2}' "/proc/$node_pid/status")
echo "restarting the node"
restart "$work/restart-1.json" 5

# 5. The sweep, once every expired session is past the sweeper's clock margin.
if [ "$EXPIRED" -gt 0 ] && [ -z "$SKIP_SWEEP" ]; then
  if [ -z "$BACKDATE" ]; then
    eligible=$(json "$work/expired.json" "int(ended_unix_s) + $EXPIRED_TTL + $margin_s + 2")
    wait_s=$((eligible - $(date +%s)))
    if [ "$wait_s" -gt 0 ]; then
      echo "waiting ${wait_s} s until the last expired session is ${margin_s} s past its deadline (SWEEP_CLOCK_MARGIN_MS)"
      sleep "$wait_s"
    fi
  fi
  echo "restarting the node with the sweeper on, unthrottled; sweeping $EXPIRED sessions"
  restart "$work/restart-2.json" 0 sweep-rate=1000000 sweep-interval=100ms
  "${helper[@]}" sweep --http "$(json "$work/restart-2.json" http)" --pid "$(cat "$work/node.pid")" \
    --since-unix-s "$(json "$work/restart-2.json" serving_unix_s)" \
    --since-cpu-s "$(json "$work/restart-2.json" cpu_s_until_status)" \
    --count "$EXPIRED" --stall-s "$SWEEP_STALL_S" --timeout $((EXPIRED / 50 + 600)) >"$work/sweep.json" || exit 1
fi

# The report.
python3 - "$work" "$KEYS" "$EXPIRED" "$VALUE_BYTES" "$key_bytes" "$rss_loaded" "${JSON_OUT:-}" <<'P'
import json, os, sys
work, keys, expired, value_bytes, key_bytes, rss_loaded, out = sys.argv[1:]
keys, expired, value_bytes, key_bytes = int(keys), int(expired), int(value_bytes), int(key_bytes)
def read(name):
    path = os.path.join(work, name)
    return json.load(open(path)) if os.path.exists(path) else None
load, exp, get, status = read("load.json"), read("expired.json"), read("get.json"), read("status-loaded.json")
r1, r2, sweep = read("restart-1.json"), read("restart-2.json"), read("sweep.json")
total = keys + expired
raw = total * (key_bytes + value_bytes)
mib = lambda kib: kib / 1024
rows = [
    ("sessions", f"{keys:,} live (EX ttl) + {expired:,} to expire, {value_bytes} B values, {key_bytes} B keys, N = 1"),
    ("load rate", f"{load['rate_per_s']:,.0f} sessions/s ({load['requests']:,} in {load['seconds']:,.1f} s), "
                  f"node CPU {load['node_cpu_us_per_request']:.1f} µs per SET, errors {load['errors']}"
                  + (f" (first: {load['first_error']})" if load['errors'] else "")),
]
if exp:
    rows.append(("load, expiring set", f"{exp['rate_per_s']:,.0f} sessions/s ({exp['requests']:,} in {exp['seconds']:,.1f} s), errors {exp['errors']}"))
rows += [
    ("RSS", f"peak {mib(load['rss_kib_peak']):,.0f} MiB during the load, {mib(int(rss_loaded)):,.0f} MiB before the stop, "
            f"{mib(r1['rss_kib_at_status']):,.0f} MiB when serving after a restart, {mib(r1['rss_kib_after']):,.0f} MiB 5 s later"),
    ("/v1/status after load", f"keys {status['keys']:,}, stored_bytes {status['stored_bytes']:,}, disk_bytes {status['disk_bytes']:,}"),
    ("disk after flush", f"{r1['disk_bytes'] / 2**30:,.2f} GiB: {r1['disk_bytes'] / total:,.0f} B per session, "
                         f"{r1['disk_bytes'] / raw:.2f} x raw ({raw / 2**30:,.2f} GiB)"),
]
if get:
    rows.append(("GET at size", f"{get['rate_per_s']:,.0f} reads/s over {get['seconds']:.0f} s, node CPU {get['node_cpu_us_per_request']:.1f} µs per GET, "
                                f"misses {get['misses']}, errors {get['errors']}"))
def restart_row(r):
    text = (f"stop {r['stop_s']:.2f} s; start to ready file {r['ready_file_s']:.2f} s, to RESP GET {r['resp_get_s']:.2f} s, "
            f"to /v1/status {r['http_status_s']:.2f} s; CPU until serving {r['cpu_s_until_status']:.2f} s")
    if r.get("rebuilt_s") is not None:
        text += f"; Merkle trees rebuilt ({r['rebuild_field']}) at {r['rebuilt_s']:.2f} s"
    elif r.get("rebuild_field"):
        text += f"; {r['rebuild_field']} never said rebuilt"
    else:
        text += "; Merkle rebuild: not reported by /v1/status in this build"
    if "idle_cpu_s_per_s" in r:
        text += f"; idle CPU {r['idle_cpu_s_per_s'] * 100:.1f} % of a core"
    return text
for mark in sorted(int(name[len("restart-at-"):-len(".json")]) for name in os.listdir(work)
                   if name.startswith("restart-at-")):
    rows.append((f"restart to serving at {mark:,} live", restart_row(read(f"restart-at-{mark}.json"))))
rows.append((f"restart to serving at {keys:,} live", restart_row(r1)))
if r2:
    rows.append(("restart, second sample", restart_row(r2)))
if sweep:
    rows.append(("sweep", f"{sweep['swept']:,} of {expired:,} removed in {sweep['seconds']:,.1f} s "
                          f"({sweep['rate_per_s']:,.0f}/s, first after {sweep['first_sweep_s'] or 0:.1f} s), "
                          f"node CPU {sweep['node_cpu_s']:.1f} s = {sweep['node_cpu_us_per_swept']:.0f} µs per swept session; "
                          f"keys after {sweep['keys_after']:,} (tombstones count until collected); "
                          f"then, nothing left to sweep, its passes over every key each 100 ms cost {sweep['idle_cpu_s_per_s_after'] * 100:.0f} % of a core"))
print("| measure | figure |\n|---|---|")
for name, text in rows:
    print(f"| {name} | {text} |")
if out:
    json.dump({"load": load, "expired": exp, "get": get, "status_loaded": status, "restart": [r1, r2],
               "sweep": sweep, "rss_kib_before_stop": int(rss_loaded), "raw_bytes": raw}, open(out, "w"), indent=1)
P
