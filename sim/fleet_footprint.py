#!/usr/bin/env python3
"""Helpers of sim/fleet-footprint.sh (not meant to be run alone).

  load     writes sessions as a Redis session middleware does: SET <prefix><id> <blob>
           EX <ttl> (or PXAT <ms>), pipelined over a few RESP connections
  get      reads random sessions among those loaded, for a fixed time
  restart  stops a node (SIGTERM), starts it again with its own command line (some
           flags replaced) and times it until it serves
  sweep    waits until the node's sweeper has removed a number of sessions

Each prints one JSON object on stdout; progress goes to stderr. Every socket operation
has a timeout and every wait a bound: a stall ends the run with an error, not a hang.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

SOCKET_TIMEOUT_S = 60
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def session_id(i):
    """A 32-character id like express-session's (uid-safe of 24 random bytes): the
    blake2b of the index, so a run is repeatable and ids spread over the ring."""
    digest = hashlib.blake2b(i.to_bytes(8, "big"), digest_size=24).digest()
    return base64.urlsafe_b64encode(digest)


def session_blob(i, sid, value_bytes):
    """A JSON session as connect-redis stores express-session's: the cookie, a CSRF
    secret, a passport user, the rest a cart, padded (or cut) to value_bytes."""
    head = (
        '{"cookie":{"originalMaxAge":86400000,"expires":"2026-12-09T00:00:00.000Z",'
        '"secure":true,"httpOnly":true,"path":"/","sameSite":"lax"},'
        '"csrfSecret":"%s","passport":{"user":"u%d"},"cart":"' % (sid[:24].decode(), i)
    ).encode()
    tail = b'"}'
    pad = value_bytes - len(head) - len(tail)
    if pad < 0:
        return (head + tail)[:value_bytes]
    return head + b"x" * pad + tail


def bulk(arg):
    return b"$%d\r\n%s\r\n" % (len(arg), arg)


def command(*args):
    return b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args)


class Replies:
    """Reads RESP2 replies (simple, error, integer, bulk) off a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.pos = 0

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the node closed the connection")
        if self.pos:
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += chunk

    def _line(self):
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = bytes(self.buf[self.pos : end])
                self.pos = end + 2
                return line
            self._fill()

    def next(self):
        """One reply: (kind, payload); kind is one of + - : $."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return b"$", None
            while len(self.buf) - self.pos < size + 2:
                self._fill()
            data = bytes(self.buf[self.pos : self.pos + size])
            self.pos += size + 2
            return b"$", data
        return kind, rest


def connect(host, port):
    sock = socket.create_connection((host, port), timeout=SOCKET_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, Replies(sock)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_batches(args, total, make):
    """Sends `total` commands made by make(n) over args.connections connections in
    lock-step batches of args.pipeline; returns counts, time, node CPU and RSS."""
    host, port = args.resp.rsplit(":", 1)
    conns = [connect(host, int(port)) for _ in range(args.connections)]
    done = errors = misses = 0
    first_error = None
    peak_rss = rss_kib(args.pid)
    cpu0 = cpu_ticks(args.pid)
    started = last_note = time.monotonic()
    step = max(total // 10, 1)
    next_report = step
    deadline = started + args.seconds if args.seconds else None
    while done < total:
        if deadline and time.monotonic() >= deadline:
            break
        sent = []
        for sock, _ in conns:
            n = min(args.pipeline, total - done - sum(sent))
            if n <= 0:
                break
            sock.sendall(make(done + sum(sent), n))
            sent.append(n)
        for (_, replies), n in zip(conns, sent):
            for _ in range(n):
                kind, payload = replies.next()
                if kind == b"-":
                    errors += 1
                    first_error = first_error or payload.decode(errors="replace")
                elif kind == b"$" and payload is None:
                    misses += 1
        done += sum(sent)
        now = time.monotonic()
        if now - last_note >= 1.0:
            peak_rss = max(peak_rss, rss_kib(args.pid))
            last_note = now
        if done >= next_report and not args.seconds:
            rate = done / max(now - started, 1e-9)
            print(f"  {done:,} of {total:,} ({rate:,.0f}/s)", file=sys.stderr, flush=True)
            next_report += step
    seconds = time.monotonic() - started
    cpu_s = (cpu_ticks(args.pid) - cpu0) / TICKS_PER_S
    peak_rss = max(peak_rss, rss_kib(args.pid))
    for sock, _ in conns:
        sock.close()
    return {
        "requests": done,
        "errors": errors,
        "first_error": first_error,
        "misses": misses,
        "seconds": seconds,
        "rate_per_s": done / seconds if seconds else 0.0,
        "node_cpu_s": cpu_s,
        "node_cpu_us_per_request": cpu_s * 1e6 / done if done else 0.0,
        "rss_kib_peak": peak_rss,
        "rss_kib_end": rss_kib(args.pid),
        "ended_unix_s": time.time(),
    }


def load(args):
    if args.pxat_ago_ms is not None:
        at = str(int(time.time() * 1000) - args.pxat_ago_ms).encode()
        expiry = [b"PXAT", at]
    else:
        expiry = [b"EX", str(args.ttl).encode()]
    prefix = args.prefix.encode()

    def make(start, n):
        out = []
        for i in range(args.start + start, args.start + start + n):
            sid = session_id(i)
            out.append(command(b"SET", prefix + sid, session_blob(i, sid, args.value_bytes), *expiry))
        return b"".join(out)

    started = time.time()
    result = run_batches(args, args.count, make)
    result["started_unix_s"] = started
    result["key_bytes"] = len(prefix) + 32
    return result


def get(args):
    prefix = args.prefix.encode()
    rng = random.Random(7)

    def make(_start, n):
        return b"".join(
            command(b"GET", prefix + session_id(args.start + rng.randrange(args.count)))
            for _ in range(n)
        )

    return run_batches(args, 1 << 62, make)


def http_json(addr, path):
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=2) as answer:
        return json.loads(answer.read())


def rebuild_field(status):
    """A field of /v1/status saying whether the Merkle trees are rebuilt, if this build
    has one: (path, done, value) or None. Builds that rebuild before serving have none.
    Any field whose name speaks of merkle, trees or a rebuild, at any depth, is judged:
    a flag named ready/done/rebuilt (true = done) or pending/rebuilding/busy (true = not
    done), a count named pending/left/remaining/rebuilding (0 = done), a state string."""
    pattern = re.compile(r"merkle|rebuil|trees", re.I)
    not_done = re.compile(r"pending|rebuilding|busy|left|remaining", re.I)
    done_name = re.compile(r"ready|done|rebuilt|complete", re.I)

    def judge(name, value):
        if isinstance(value, bool):
            if not_done.search(name):
                return not value
            return value if done_name.search(name) else None
        if isinstance(value, (int, float)) and not_done.search(name):
            return value == 0
        if isinstance(value, str):
            return value.lower() in ("ready", "done", "rebuilt", "complete", "idle")
        return None

    def walk(node, path, inside):
        if not isinstance(node, dict):
            return None
        for name, value in node.items():
            here = f"{path}.{name}" if path else name
            relevant = inside or bool(pattern.search(name))
            if relevant:
                verdict = judge(here, value)
                if verdict is not None:
                    return here, verdict, value
            found = walk(value, here, relevant)
            if found:
                return found
        return None

    return walk(status, "", False)


def resp_get(addr, key):
    host, port = addr.rsplit(":", 1)
    sock, replies = connect(host, int(port))
    sock.settimeout(2)
    try:
        sock.sendall(command(b"GET", key))
        return replies.next()[1]
    finally:
        sock.close()


def node_argv(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().rstrip(b"\0").split(b"\0")
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    return argv, env, os.readlink(f"/proc/{pid}/cwd")


def restart(args):
    argv, env, cwd = node_argv(args.pid)
    if args.binary:  # start again under another build (the same store and flags)
        argv[0] = os.path.abspath(args.binary).encode()
    for setting in args.set:
        name, _, value = setting.partition("=")
        flag, value = b"--" + name.encode(), value.encode()
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    ready = argv[argv.index(b"--ready-file") + 1].decode()
    stop_started = time.monotonic()
    os.kill(args.pid, signal.SIGTERM)
    while os.path.exists(f"/proc/{args.pid}") and time.monotonic() - stop_started < args.timeout:
        time.sleep(0.02)
    if os.path.exists(f"/proc/{args.pid}"):
        sys.exit(f"restart: node {args.pid} did not stop within {args.timeout} s")
    stop_s = time.monotonic() - stop_started
    disk_bytes = None
    if args.measure_dir:  # the store is flushed and closed: its bytes, as du -sb counts
        disk_bytes = sum(
            os.lstat(os.path.join(root, name)).st_size
            for root, dirs, files in os.walk(args.measure_dir)
            for name in files + dirs
        )
    if os.path.exists(ready):
        os.remove(ready)
    log = open(args.log, "ab")
    started = time.monotonic()
    child = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=log, start_new_session=True)
    with open(args.pid_file, "w") as f:
        f.write(str(child.pid))
    times = {}
    want_key, want_value = args.get_key.encode(), None
    if args.get_index is not None:
        sid = session_id(args.get_index)
        want_value = session_blob(args.get_index, sid, args.value_bytes)
    addresses = None
    rebuild = None
    while time.monotonic() - started < args.timeout:
        if child.poll() is not None:
            sys.exit(f"restart: the node exited with {child.returncode} (see {args.log})")
        now = lambda: time.monotonic() - started  # noqa: E731
        if addresses is None and os.path.exists(ready):
            try:
                with open(ready) as f:
                    addresses = json.load(f)
                times["ready_file_s"] = now()
            except ValueError:
                addresses = None  # half written: read again
        if addresses:
            if "http_status_s" not in times:
                try:
                    status = http_json(addresses["http"], "/v1/status")
                    times["http_status_s"] = now()
                    times["serving_unix_s"] = time.time()
                    times["cpu_s_until_status"] = cpu_ticks(child.pid) / TICKS_PER_S
                    times["rss_kib_at_status"] = rss_kib(child.pid)
                    rebuild = rebuild_field(status)
                except OSError:
                    pass
            if "resp_get_s" not in times and addresses.get("resp"):
                try:
                    value = resp_get(addresses["resp"], want_key)
                    if want_value is None or value == want_value:
                        times["resp_get_s"] = now()
                except (OSError, ConnectionError, ValueError):
                    pass
            if "http_status_s" in times and "resp_get_s" in times:
                if rebuild is None:
                    break
                name, done, raw = rebuild
                times["rebuild_field"] = name
                times["rebuild_value"] = raw
                if done:
                    times["rebuilt_s"] = now()
                    break
                try:
                    rebuild = rebuild_field(http_json(addresses["http"], "/v1/status"))
                except OSError:
                    pass
        time.sleep(0.01)
    else:
        sys.exit(f"restart: the node did not serve within {args.timeout} s (see {args.log})")
    times.update(stop_s=stop_s, disk_bytes=disk_bytes, pid=child.pid, http=addresses["http"], resp=addresses.get("resp"))
    times["rebuild_reported"] = rebuild is not None
    if args.idle_s:
        cpu0, t0 = cpu_ticks(child.pid), time.monotonic()
        time.sleep(args.idle_s)
        times["idle_cpu_s_per_s"] = (cpu_ticks(child.pid) - cpu0) / TICKS_PER_S / (time.monotonic() - t0)
    times["rss_kib_after"] = rss_kib(child.pid)
    return times


def sweep(args):
    """Counts from the restart that turned the sweeper on: the node's counters start at
    0 there, and its CPU and the clock from the moment it served (--since-*)."""
    last, last_progress, first_s = 0, time.time(), None
    while True:
        time.sleep(0.5)
        now = time.time()
        swept = http_json(args.http, "/v1/status")["sessions"]["swept"]
        if swept > last:
            if first_s is None:
                first_s = now - args.since_unix_s
            last, last_progress = swept, now
        if swept >= args.count:
            break
        if now - last_progress > args.stall_s or now - args.since_unix_s > args.timeout:
            print(f"  sweep stopped short: {swept:,} of {args.count:,}", file=sys.stderr)
            break
        if int(now) % 30 == 0:
            print(f"  swept {swept:,} of {args.count:,}", file=sys.stderr, flush=True)
    cpu_s = cpu_ticks(args.pid) / TICKS_PER_S - args.since_cpu_s
    seconds = last_progress - args.since_unix_s
    # What the sweeper costs once nothing is left to sweep: its passes go on reading
    # up to SWEEP_SCAN_KEYS_MAX keys each --sweep-interval.
    cpu0, t0 = cpu_ticks(args.pid), time.monotonic()
    time.sleep(args.idle_s)
    idle = (cpu_ticks(args.pid) - cpu0) / TICKS_PER_S / (time.monotonic() - t0)
    status = http_json(args.http, "/v1/status")
    return {
        "swept": last,
        "seconds": seconds,
        "first_sweep_s": first_s,
        "rate_per_s": last / seconds if seconds else 0.0,
        "node_cpu_s": cpu_s,
        "node_cpu_us_per_swept": cpu_s * 1e6 / last if last else 0.0,
        "idle_cpu_s_per_s_after": idle,
        "keys_after": status["keys"],
        "disk_bytes_after": status["disk_bytes"],
        "rss_kib": rss_kib(args.pid),
    }


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="step", required=True)
    for name in ("load", "get"):
        p = sub.add_parser(name)
        p.add_argument("--resp", required=True)
        p.add_argument("--pid", type=int, required=True)
        p.add_argument("--start", type=int, default=0)
        p.add_argument("--count", type=int, required=True)
        p.add_argument("--prefix", default="sess:")
        p.add_argument("--value-bytes", type=int, default=512)
        p.add_argument("--connections", type=int, default=8)
        p.add_argument("--pipeline", type=int, default=32)
        p.add_argument("--ttl", type=int, default=86400)
        p.add_argument("--pxat-ago-ms", type=int)
        p.add_argument("--seconds", type=float, default=0)
    p = sub.add_parser("restart")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--pid-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--get-key", required=True)
    p.add_argument("--get-index", type=int)
    p.add_argument("--value-bytes", type=int, default=512)
    p.add_argument("--set", action="append", default=[], help="NAME=VALUE: --NAME VALUE on restart")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--idle-s", type=float, default=0)
    p.add_argument("--measure-dir")
    p.add_argument("--binary", help="start again with this cartwheel binary")
    p = sub.add_parser("sweep")
    p.add_argument("--http", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--since-unix-s", type=float, required=True)
    p.add_argument("--since-cpu-s", type=float, required=True)
    p.add_argument("--idle-s", type=float, default=10)
    p.add_argument("--stall-s", type=float, default=120)
    p.add_argument("--timeout", type=float, default=7200)
    args = parser.parse_args()
    result = {"load": load, "get": get, "restart": restart, "sweep": sweep}[args.step](args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
