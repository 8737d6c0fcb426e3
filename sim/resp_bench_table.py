"""The table of sim/resp-bench.sh: every run, then the median cartwheel / Redis ratios.

Arguments: the runs manifest (kind, system, pipeline, round, path, test per line, tab
separated) and the durability note to print under the tables. A run whose output is
missing or unreadable shows as FAILED and counts in no ratio.
"""

import csv
import json
import statistics
import sys


def benchmark_rows(path):
    """{test: (requests/s, p50 ms, p99 ms)} from `redis-benchmark --csv` output."""
    rows = {}
    try:
        with open(path, newline="") as handle:
            # Warnings (no CONFIG on cartwheel) may come before the header.
            lines = [line for line in handle if not line.startswith("WARNING")]
            for row in csv.DictReader(lines):
                if row.get("test") and row.get("rps"):
                    rows[row["test"]] = (
                        float(row["rps"]),
                        float(row["p50_latency_ms"]),
                        float(row["p99_latency_ms"]),
                    )
    except (OSError, ValueError, KeyError):
        return None
    return rows or None


def failure(path):
    """The server's error that ended a redis-benchmark run, if its output names one."""
    try:
        for line in open(path):
            if line.startswith("Error from server:"):
                return ": " + line.split(":", 1)[1].strip()[:120]
    except OSError:
        pass
    return ""


def bench_summary(path):
    """(ops/s, p50 ms, p99 ms, errors) from a `cartwheel bench --json` summary."""
    try:
        summary = json.load(open(path))
        latency = summary["latency_ms"]
        return (summary["throughput_ops_s"], latency["p50"], latency["p99"], summary["errors"])
    except (OSError, ValueError, KeyError):
        return None


def main(manifest, durability):
    runs = [line.rstrip("\n").split("\t") for line in open(manifest) if line.strip()]
    # (load, pipeline, test, round) -> {system: (ops/s, p50, p99)}
    results = {}
    print()
    print("| load | pipeline | test | system | round | ops/s | p50 ms | p99 ms |")
    print("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |")
    for kind, system, pipeline, round_, path, test_name in runs:
        if kind == "benchmark":
            rows = benchmark_rows(path)
            if rows is None:
                print(f"| redis-benchmark | {pipeline} | {test_name.upper()} | {system} | {round_} "
                      f"| FAILED{failure(path)} | | |")
                continue
            for test, (rps, p50, p99) in rows.items():
                results.setdefault(("redis-benchmark", pipeline, test, round_), {})[system] = (
                    rps, p50, p99)
                print(f"| redis-benchmark | {pipeline} | {test} | {system} | {round_} "
                      f"| {rps:.0f} | {p50:.2f} | {p99:.2f} |")
        else:
            summary = bench_summary(path)
            if summary is None:
                print(f"| cartwheel bench | 1 | {test_name} | {system} | {round_} | FAILED | | |")
                continue
            ops, p50, p99, errors = summary
            # Both systems sit in one ratio row: Redis as redis-wait, cartwheel as itself.
            test = f"{test_name} (+ WAIT 1 on Redis)" if test_name == "SET" else test_name
            key = ("cartwheel bench", "1", test, round_)
            results.setdefault(key, {})["redis" if system == "redis-wait" else system] = (
                ops, p50, p99)
            note = f" ({errors} errors)" if errors else ""
            wait = " + WAIT 1" if system == "redis-wait" and test_name == "SET" else ""
            print(f"| cartwheel bench | 1 | {test_name}{wait} "
                  f"| {system} | {round_} | {ops:.0f}{note} | {p50:.2f} | {p99:.2f} |")

    ratios = {}
    for (load, pipeline, test, _round), systems in results.items():
        if "redis" in systems and "cartwheel" in systems and systems["redis"][0] > 0:
            ours, theirs = systems["cartwheel"], systems["redis"]
            p99 = ours[2] / theirs[2] if theirs[2] > 0 else None
            ratios.setdefault((load, pipeline, test), []).append((ours[0] / theirs[0], p99))
    print()
    print("| load | pipeline | test | rounds | median cartwheel / Redis ops/s | median p99 ratio |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for (load, pipeline, test), values in sorted(ratios.items()):
        throughput = statistics.median(value[0] for value in values)
        p99s = [value[1] for value in values if value[1] is not None]
        p99 = f"{statistics.median(p99s):.2f}" if p99s else "-"
        print(f"| {load} | {pipeline} | {test} | {len(values)} | {throughput:.3f} | {p99} |")
    print()
    print(open(durability).read().rstrip())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
