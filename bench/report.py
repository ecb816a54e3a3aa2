#!/usr/bin/env python3
"""Turns bench/inside.sh's raw records into the markdown tables of BENCHMARKS.md and a PNG chart.

    python3 bench/report.py --raw OUT/latest.jsonl --meta OUT/latest.meta.json --md OUT/latest.md
                            [--png OUT/latest.png] [--git REV] [--quick]

Medians over runs; every ratio is taken between two numbers of the same run (then the median of
those ratios), so a slow moment of the machine moves both sides. Exits non-zero when a contender
or section is missing: the smoke run relies on that. The markdown goes to stdout and to --md.
Standard library only, except matplotlib for --png.
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict

CLI = [
    ("qrpush", "QrPush::publish"),
    ("phpredis", "phpredis pconnect"),
    ("predis", "predis (persistent)"),
    ("zmq", "ext-zmq PUSH (no reply) ¹"),
    ("php_floor", "raw PHP socket (floor)"),
    ("rust_floor", "raw Rust client (floor)"),
    ("qrpush_tls", "QrPush::publish over TLS (rediss://, same Redis)"),
    ("redis_benchmark_c1_P1", "redis-benchmark -c 1 -P 1"),
    ("redis_benchmark_c8_P16", "redis-benchmark -c 8 -P 16 (server ceiling) ²"),
]
BATCH = [
    ("qrpush_many", "QrPush::publishMany"),
    ("phpredis_pipeline", "phpredis multi(Redis::PIPELINE)"),
    ("predis_pipeline", "predis pipeline()"),
]
ARRAY = [
    ("qrpush_array", "QrPush::publish($ch, $array)"),
    ("qrpush_json_encode", "QrPush::publish($ch, json_encode($array))"),
    ("phpredis_json_encode", "phpredis publish($ch, json_encode($array))"),
    ("json_encode_only", "json_encode($array) alone (no publish)"),
]
FPM = [
    ("noop", "no-op (baseline)"),
    ("qrpush", "QrPush::publish"),
    ("phpredis_pconnect", "phpredis pconnect, password at connect"),
    ("phpredis_pconnect_auth", "phpredis pconnect + auth() each request"),
    ("phpredis_pconnect_nocheck", "phpredis pconnect, password at connect, no ECHO check ³"),
    ("predis", "predis (persistent)"),
    ("phpredis_connect", "phpredis connect + auth + close each request"),
    ("zmq", "ext-zmq PUSH (persistent socket, no reply)"),
    ("qrpush_client", "new QrPush\\Client(redis://…) per request"),
    ("qrpush_client_tls", "new QrPush\\Client(rediss://…) per request (TLS)"),
]
COLD = [("qrpush", "QrPush"), ("phpredis", "phpredis pconnect"), ("predis", "predis"),
        ("qrpush_tls", "QrPush over TLS (+ handshake)")]
MEM = [
    ("noext", "without QrPush"),
    ("ext_loaded", "QrPush loaded, not used yet"),
    ("ext_used", "QrPush loaded, after publishing (connection open)"),
]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    if v is None:
        return "–"
    if abs(v) >= 10000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def ratio(v):
    return "–" if v is None else f"{v:.2f}×"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


class Data:
    def __init__(self, records):
        self.records = records
        self.missing = []

    def select(self, section, **match):
        return [r for r in self.records if r["section"] == section and all(r.get(k) == v for k, v in match.items())]

    def metric(self, section, field, **match):
        """Median over runs of one field."""
        rows = self.select(section, **match)
        if not rows:
            self.missing.append(f"{section} {match}")
            return None
        return med([r.get(field) for r in rows])

    def paired(self, section, field, key, a, b, invert=False, **match):
        """Median over runs of a[field] / b[field] (records with the same run and match)."""
        by_run = defaultdict(dict)
        for r in self.select(section, **match):
            by_run[r["run"]][r[key]] = r.get(field)
        ratios = []
        for run in by_run.values():
            x, y = run.get(a), run.get(b)
            if x and y:
                ratios.append(y / x if invert else x / y)
        return med(ratios)


def render(d, meta, git, quick):
    s = d.select("settings")
    settings = s[0] if s else {}
    L = []
    L.append("## Machine and software\n")
    L.append(table(["", ""], [
        ["CPU", f"{meta.get('cpu')} — {meta.get('nproc')} cores (nproc), {meta.get('mem_gb')} GB RAM"],
        ["kernel", meta.get("kernel")],
        ["userland", f"{meta.get('os')} (chroot from scripts/provision)"],
        ["PHP", f"{meta.get('php')} (CLI opcache {'on' if meta.get('opcache_cli') else 'off'}; php-fpm with Debian's php.ini, opcache on)"],
        ["QrPush", f"{meta.get('qrpush')}, release build ({git})"],
        ["phpredis / predis / ext-zmq", f"{meta.get('phpredis')} / {meta.get('predis')} / {meta.get('zmq')}"],
        ["Redis", f"{meta.get('redis')}, loopback TCP, `requirepass` set, no persistence"],
        ["nginx / wrk", f"{meta.get('nginx')} / {meta.get('wrk')}"],
        ["date", meta.get("date")],
        ["settings", (
            f"{settings.get('runs')} runs (php-fpm: {settings.get('fpm_runs')}); CLI loops of {settings.get('n_small')} (100 B) "
            f"and {settings.get('n_medium')} (4 KB) publishes; wrk -t2 -c{settings.get('wrk_connections')} "
            f"-d{settings.get('wrk_seconds')}s after {settings.get('wrk_warmup')} s warm-up; "
            f"{settings.get('cold_n')} cold processes; "
            f"{'client on CPU 0, Redis on the last CPU (taskset)' if settings.get('pinned') else 'no CPU pinning'}"
            + ("; **--quick smoke run: numbers are meaningless**" if quick else "")
        )],
    ]))

    # 1. CLI loop
    for size, label in ((100, "small messages (100 B)"), (4096, "medium messages (4 KB)")):
        L.append(f"\n## 1. CLI loop, {label}\n")
        L.append("Sequential publishes in one PHP CLI process on a warm connection. Wall and CPU (getrusage: user + "
                 "system, all threads) are per publish; ratios are contender ÷ QrPush in the same run (below 1 = "
                 "the contender is cheaper).\n")
        rows = []
        for key, name in CLI:
            m = dict(contender=key, size=size)
            rows.append([
                name,
                fmt(d.metric("cli", "ops", **m)),
                fmt(d.metric("cli", "p50_us", **m)),
                fmt(d.metric("cli", "p99_us", **m)),
                fmt(d.metric("cli", "wall_us", **m), 2),
                fmt(d.metric("cli", "cpu_us", **m), 2) if not key.startswith("redis_benchmark") else "–",
                ratio(d.paired("cli", "wall_us", "contender", key, "qrpush", size=size)),
                ratio(d.paired("cli", "cpu_us", "contender", key, "qrpush", size=size)) if not key.startswith("redis_benchmark") else "–",
            ])
        L.append(table(["contender", "ops/s", "p50 µs", "p99 µs", "wall µs/publish", "CPU µs/publish", "wall ÷ QrPush", "CPU ÷ QrPush"], rows))
    L.append("\n¹ ext-zmq's `send()` only queues the message for libzmq's I/O thread: no round trip, no reply, "
             "no delivery check (its CPU includes that thread). ² 8 clients × 16 pipelined commands: what this "
             "Redis can absorb, not a client's cost.")

    # 2. batches
    L.append("\n## 2. Batches (100 B messages)\n")
    L.append("Messages per second; latency is per batch call. The loop is 100 single `QrPush::publish` calls.\n")
    rows = []
    for batch in (10, 100, 1000):
        for key, name in BATCH:
            m = dict(contender=key, batch=batch)
            rows.append([
                f"{name} ({batch})",
                fmt(d.metric("batch", "ops", **m)),
                fmt(d.metric("batch", "p50_us", **m)),
                fmt(d.metric("batch", "p99_us", **m)),
                fmt(d.metric("batch", "cpu_us", **m), 3),
                ratio(d.paired("batch", "ops", "contender", key, "qrpush_many", batch=batch)),
            ])
    m = dict(contender="qrpush_loop", batch=100)
    rows.append([
        "loop of 100 × QrPush::publish",
        fmt(d.metric("batch", "ops", **m)), fmt(d.metric("batch", "p50_us", **m)), fmt(d.metric("batch", "p99_us", **m)),
        fmt(d.metric("batch", "cpu_us", **m), 3),
        ratio(d.paired("batch", "ops", "contender", "qrpush_loop", "qrpush_many", batch=100)),
    ])
    L.append(table(["contender (batch size)", "messages/s", "p50 µs per call", "p99 µs per call", "CPU µs/message", "messages/s ÷ QrPush"], rows))

    # 3. arrays
    sample = d.select("array", contender="qrpush_array")
    size = sample[0].get("bytes") if sample else "?"
    L.append(f"\n## 3. Array payloads (a typical event, {size} B of JSON)\n")
    L.append("The event array is built outside the timed call; encoding is inside it. QrPush's encoder is "
             "byte-identical to `json_encode(..., JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION)`.\n")
    rows = []
    for key, name in ARRAY:
        m = dict(contender=key)
        rows.append([
            name, fmt(d.metric("array", "ops", **m)), fmt(d.metric("array", "p50_us", **m)), fmt(d.metric("array", "p99_us", **m)),
            fmt(d.metric("array", "wall_us", **m), 2), fmt(d.metric("array", "cpu_us", **m), 2),
            ratio(d.paired("array", "cpu_us", "contender", key, "qrpush_array")),
        ])
    L.append(table(["contender", "ops/s", "p50 µs", "p99 µs", "wall µs", "CPU µs", "CPU ÷ QrPush array"], rows))

    # 4. php-fpm
    conns = (d.select("fpm") or [{}])[0].get("connections", "?")
    L.append("\n## 4. Per request under php-fpm (the number users care about)\n")
    L.append(f"nginx (1 worker) → php-fpm (pm static, 2 workers, opcache on) → Redis with a password; wrk -t2 -c{conns}; "
             "one 100 B publish per request. *Extra µs* = 1/req·s − 1/req·s of the no-op (machine time per request, "
             "everything included); *worker CPU* = utime + stime of the two FPM workers per request (/proc); "
             "*Redis CPU* = the same for redis-server.\n")
    rows = []
    for key, name in FPM:
        m = dict(endpoint=key)
        rps = d.metric("fpm", "rps", **m)
        # extra µs per request = 1e6/rps - 1e6/rps_noop, per run, then the median
        extras = []
        cpu_extra = []
        by_run = defaultdict(dict)
        for r in d.select("fpm"):
            by_run[r["run"]][r["endpoint"]] = r
        for run in by_run.values():
            if key in run and "noop" in run:
                extras.append(1e6 / run[key]["rps"] - 1e6 / run["noop"]["rps"])
                cpu_extra.append(run[key]["worker_cpu_us"] - run["noop"]["worker_cpu_us"])
        p50 = d.metric("fpm", "p50_us", **m)
        p99 = d.metric("fpm", "p99_us", **m)
        rows.append([
            name, fmt(rps), fmt(p50 / 1000 if p50 else None, 2), fmt(p99 / 1000 if p99 else None, 2),
            "–" if key == "noop" else fmt(med(extras)),
            fmt(d.metric("fpm", "worker_cpu_us", **m)),
            "–" if key == "noop" else fmt(med(cpu_extra)),
            fmt(d.metric("fpm", "redis_cpu_us", **m)),
            ratio(d.paired("fpm", "rps", "endpoint", key, "qrpush")),
        ])
    L.append(table(["endpoint", "req/s", "p50 ms", "p99 ms", "extra µs/request", "worker CPU µs/req",
                    "extra worker CPU µs", "Redis CPU µs/req", "req/s ÷ QrPush"], rows))
    L.append("\n³ `redis.pconnect.echo_check_liveness=0` (set with ini_set in that endpoint only): phpredis at its "
             "fastest, but a pooled connection the server closed while idle then fails a request instead of being "
             "replaced. phpredis's default checks every reused connection with an ECHO round trip (plus AUTH when "
             "the password is in the connect options); QrPush checks with a non-blocking `recv(MSG_PEEK)`, no round trip.")

    # 4b. TLS vs TCP with Redis on its own core
    if d.select("fpm_split"):
        L.append("\n### 4b. TLS against plain TCP, Redis on a core of its own\n")
        L.append("The same endpoints with the FPM workers and nginx confined to CPU 0, and Redis and wrk (-t1) on the "
                 "last CPU, which they do not saturate; as when Redis runs on another host, req/s then measures the PHP "
                 "side only, and Redis's own TLS work shows in its CPU column instead of taking req/s away from PHP. "
                 "Medians of more runs than section 4.\n")
        rows = []
        for key, name in (("noop", "no-op (baseline)"), ("qrpush_client", "new QrPush\\Client(redis://…) per request"),
                          ("qrpush_client_tls", "new QrPush\\Client(rediss://…) per request (TLS)")):
            m = dict(endpoint=key)
            p50 = d.metric("fpm_split", "p50_us", **m)
            rows.append([name, fmt(d.metric("fpm_split", "rps", **m)), fmt(p50 / 1000 if p50 else None, 2),
                         fmt(d.metric("fpm_split", "worker_cpu_us", **m)), fmt(d.metric("fpm_split", "redis_cpu_us", **m)),
                         ratio(d.paired("fpm_split", "rps", "endpoint", key, "qrpush_client"))])
        L.append(table(["endpoint", "req/s", "p50 ms", "worker CPU µs/req", "Redis CPU µs/req", "req/s ÷ TCP"], rows))

    # 5. cold
    n = settings.get("cold_n", "?")
    L.append("\n## 5. Cold worker: the first publish of a fresh process\n")
    L.append(f"Median over {n} fresh `php` processes each: object setup + TCP connect + AUTH (when a password is set) + "
             "PUBLISH, timed inside the process (PHP startup excluded); then the second publish on the warm connection.\n")
    rows = []
    for auth, alabel in ((1, "with password"), (0, "no password")):
        q = d.metric("cold", "first_us", contender="qrpush", auth=auth)
        for key, name in COLD:
            if key == "qrpush_tls" and auth == 0:
                continue
            m = dict(contender=key, auth=auth)
            first = d.metric("cold", "first_us", **m)
            best = min((r["first_us"] for r in d.select("cold", **m)), default=None)
            rows.append([name, alabel, fmt(first), fmt(best), fmt(d.metric("cold", "second_us", **m)),
                         ratio(first / q if first and q else None)])
    L.append(table(["contender", "Redis", "first publish µs (median)", "best of all", "second publish µs", "first ÷ QrPush (medians)"], rows))
    L.append("\nOn a busy machine the distribution is bimodal (a preempted process takes milliseconds): the "
             "best of all processes is the undisturbed cost.")

    # 6. memory
    L.append("\n## 6. Memory of a php-fpm worker\n")
    L.append("VmRSS counts every page a worker has touched, including shared ones (opcache's shared memory, "
             "the mapped code of PHP, its extensions and libqrpush.so, counted in full in every worker), so Pss "
             "(shared pages divided among the processes that map them) and the private part (Private_Clean + "
             "Private_Dirty from smaps_rollup) are shown too. Medians over the pool's workers, after the same "
             "number of warm-up rounds (wrk, 1 s each).\n")
    rows = []
    base = {f: d.metric("mem", f, kind="noext") for f in ("rss_kb", "pss_kb", "private_kb")}
    for key, name in MEM:
        row = [name]
        for f in ("rss_kb", "pss_kb", "private_kb"):
            v = d.metric("mem", f, kind=key)
            row += [fmt(v), "–" if key == "noext" or v is None or base[f] is None else f"{v - base[f]:+,.0f}"]
        so_rss, so_priv = d.metric("mem", "so_rss_kb", kind=key), d.metric("mem", "so_private_kb", kind=key)
        row.append("–" if key == "noext" else f"{fmt(so_rss)} / {fmt(so_priv)}")
        rows.append(row)
    L.append(table(["php-fpm worker", "VmRSS kB", "Δ", "Pss kB", "Δ", "private kB", "Δ",
                    "libqrpush.so pages kB (resident / private)"], rows))
    L.append("\nOne worker (pm static, 1 worker per contender) publishing 100 B messages, memory sampled after "
             "every step:\n")
    curve = defaultdict(dict)
    for r in d.select("mem_curve"):
        curve[r["publishes"]][r["contender"]] = r
    rows = []
    for pubs in sorted(curve):
        q, p = curve[pubs].get("qrpush", {}), curve[pubs].get("phpredis", {})
        rows.append([f"{pubs:,}", fmt(q.get("rss_kb")), fmt(q.get("pss_kb")), fmt(q.get("private_kb")), fmt(q.get("so_rss_kb")),
                     fmt(p.get("rss_kb")), fmt(p.get("pss_kb")), fmt(p.get("private_kb"))])
    if not rows:
        d.missing.append("mem_curve")
    L.append(table(["publishes", "QrPush VmRSS kB", "QrPush Pss kB", "QrPush private kB", "of it libqrpush.so kB",
                    "phpredis VmRSS kB", "phpredis Pss kB", "phpredis private kB"], rows))

    # targets
    L.append("\n## Targets of issue 5 (ratios from the same run)\n")
    T = []

    def target(name, value, ok, how):
        T.append([name, how, "–" if value is None else value, "n/a" if ok is None else ("**met**" if ok else "**missed**")])

    def ratio3(v):  # targets are decided on the third decimal: show it
        return "–" if v is None else f"{v:.3f}×"

    r = d.paired("cli", "wall_us", "contender", "qrpush", "php_floor", size=100)
    target("single publish wall ≤ 1.05× raw-socket floor", ratio3(r), None if r is None else r <= 1.05, "QrPush ÷ raw PHP socket, wall µs, 100 B")
    r50 = d.paired("cli", "p50_us", "contender", "qrpush", "php_floor", size=100)
    target("  (same, p50 latency)", ratio3(r50), None if r50 is None else r50 <= 1.05, "QrPush ÷ raw PHP socket, p50, 100 B")
    r = d.paired("cli", "wall_us", "contender", "qrpush", "phpredis", size=100)
    target("single publish wall ≤ phpredis pconnect", ratio3(r), None if r is None else r <= 1.0, "QrPush ÷ phpredis, wall µs, 100 B")
    r = d.paired("cli", "cpu_us", "contender", "qrpush", "phpredis", size=100)
    target("CPU per publish ≤ phpredis", ratio3(r), None if r is None else r <= 1.0, "QrPush ÷ phpredis, CPU µs, 100 B")
    r = d.paired("cli", "cpu_us", "contender", "qrpush", "phpredis", size=4096)
    target("  (same, 4 KB)", ratio3(r), None if r is None else r <= 1.0, "QrPush ÷ phpredis, CPU µs, 4 KB")
    r = d.paired("batch", "ops", "contender", "qrpush_many", "qrpush_loop", batch=100)
    target("publishMany(100) ≥ 10× the single-publish loop", ratio3(r), None if r is None else r >= 10, "messages/s, publishMany(100) ÷ loop")
    r = d.paired("batch", "ops", "contender", "qrpush_many", "phpredis_pipeline", batch=100)
    target("publishMany(100) ≥ phpredis pipeline", ratio3(r), None if r is None else r >= 1.0, "messages/s, QrPush ÷ phpredis, batch 100")
    for key, need, label in (("phpredis_pconnect", 1.0, "phpredis pconnect (password at connect)"),
                             ("phpredis_pconnect_auth", 1.0, "phpredis pconnect + auth()"),
                             ("predis", 1.5, "predis"),
                             ("phpredis_connect", 1.5, "phpredis connect per request")):
        r = d.paired("fpm", "rps", "endpoint", "qrpush", key)
        target(f"php-fpm req/s ≥ {need:g}× {label}", ratio3(r), None if r is None else r >= need, f"req/s, QrPush ÷ {key}")
    r = d.paired("fpm", "rps", "endpoint", "qrpush", "phpredis_pconnect_nocheck")
    target("  (info) vs phpredis without its ECHO check", ratio3(r), None, "req/s, QrPush ÷ phpredis_pconnect_nocheck")
    overheads = defaultdict(list)
    for run in {r["run"] for r in d.select("fpm")}:
        rs = {r["endpoint"]: r for r in d.select("fpm", run=run)}
        if {"noop", "qrpush", "phpredis_pconnect"} <= rs.keys():
            o_q = 1e6 / rs["qrpush"]["rps"] - 1e6 / rs["noop"]["rps"]
            o_p = 1e6 / rs["phpredis_pconnect"]["rps"] - 1e6 / rs["noop"]["rps"]
            overheads["q"].append(o_q)
            overheads["p"].append(o_p)
    oq, op = med(overheads["q"]), med(overheads["p"])
    target("per-request overhead over no-op ≤ phpredis pconnect's", None if oq is None else f"{oq:.0f} µs vs {op:.0f} µs",
           None if oq is None else oq <= op, "extra µs/request (1/req·s − 1/req·s no-op)")
    r = d.paired("fpm_split", "rps", "endpoint", "qrpush_client_tls", "qrpush_client")
    target("TLS: persistent rediss:// per request within 10% of plain TCP", ratio3(r), None if r is None else r >= 0.9,
           "php-fpm req/s, Client(rediss://) ÷ Client(redis://), Redis on its own core (4b)")
    r = d.paired("fpm", "rps", "endpoint", "qrpush_client_tls", "qrpush_client")
    target("  (info) the same, Redis sharing the cores with PHP", ratio3(r), None,
           "php-fpm req/s, Client(rediss://) ÷ Client(redis://), section 4")
    r = d.paired("cli", "wall_us", "contender", "qrpush_tls", "qrpush", size=100)
    target("  (info) TLS single publish in the CLI loop", ratio3(r), None, "wall µs, QrPush TLS ÷ TCP, 100 B")
    for f, label in (("rss_kb", "VmRSS"), ("pss_kb", "Pss"), ("private_kb", "private")):
        used, none = d.metric("mem", f, kind="ext_used"), d.metric("mem", f, kind="noext")
        target(f"extension RSS overhead ≤ 1 MB per worker ({label})", None if used is None or none is None else f"{used - none:+,.0f} kB",
               None if used is None or none is None else used - none <= 1024, f"{label} with QrPush (used) − without")
    steps = sorted(curve)
    if len(steps) >= 3:
        first, last = curve[steps[1]].get("qrpush", {}), curve[steps[-1]].get("qrpush", {})
        if first and last:
            growth = last["rss_kb"] - first["rss_kb"]
            target(f"flat after {steps[-1]:,} publishes", f"{growth:+,} kB", growth <= 128,
                   f"QrPush worker VmRSS at {steps[-1]:,} − at {steps[1]:,} (≤ 128 kB)")
    L.append(table(["target", "measured as", "value", "status"], T))
    L.append("\nA ratio within a few percent of 1 on a loaded machine is a tie, whichever side of the line it lands.")
    return "\n".join(L) + "\n"


def chart(d, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(18, 10))
    fig.suptitle("QrPush vs phpredis, predis, ext-zmq and raw floors (medians)", fontsize=14)

    a = ax[0][0]
    keys = [k for k, _ in CLI if not k.startswith("redis_benchmark") and k != "zmq"]
    wall = [d.metric("cli", "wall_us", contender=k, size=100) or 0 for k in keys]
    cpu = [d.metric("cli", "cpu_us", contender=k, size=100) or 0 for k in keys]
    x = range(len(keys))
    a.bar([i - 0.2 for i in x], wall, 0.4, label="wall µs")
    a.bar([i + 0.2 for i in x], cpu, 0.4, label="CPU µs")
    a.set_xticks(list(x), keys, rotation=30, ha="right")
    a.set_title("1. CLI: µs per 100 B publish (lower is better)")
    a.legend()

    a = ax[0][1]
    for k, name in BATCH:
        ys = [d.metric("batch", "ops", contender=k, batch=b) for b in (10, 100, 1000)]
        a.plot([10, 100, 1000], ys, marker="o", label=name)
    loop = d.metric("batch", "ops", contender="qrpush_loop", batch=100)
    if loop:
        a.axhline(loop, color="grey", linestyle="--", label="loop of QrPush::publish")
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("batch size")
    a.set_title("2. Batches: messages/s (higher is better)")
    a.legend(fontsize=8)

    a = ax[0][2]
    keys = [k for k, _ in ARRAY]
    a.bar(range(len(keys)), [d.metric("array", "cpu_us", contender=k) or 0 for k in keys], color="tab:purple")
    a.set_xticks(range(len(keys)), keys, rotation=30, ha="right")
    a.set_title("3. Array event: CPU µs per publish (lower is better)")

    a = ax[1][0]
    keys = [k for k, _ in FPM]
    a.barh(range(len(keys)), [d.metric("fpm", "rps", endpoint=k) or 0 for k in keys],
           color=["grey" if k == "noop" else "tab:green" if k == "qrpush" else "tab:blue" for k in keys])
    a.set_yticks(range(len(keys)), keys)
    a.invert_yaxis()
    a.set_title("4. php-fpm + nginx: requests/s (higher is better)")

    a = ax[1][1]
    keys = [k for k, _ in COLD]
    x = range(len(keys))
    a.bar([i - 0.2 for i in x], [d.metric("cold", "first_us", contender=k, auth=1) or 0 for k in keys], 0.4, label="with password")
    a.bar([i + 0.2 for i in x], [d.metric("cold", "first_us", contender=k, auth=0) or 0 for k in keys], 0.4, label="no password")
    for off, auth in ((-0.2, 1), (0.2, 0)):
        best = [min((r["first_us"] for r in d.select("cold", contender=k, auth=auth)), default=0) for k in keys]
        a.scatter([i + off for i in x], best, color="black", zorder=3, label="best process" if auth else None)
    a.set_xticks(list(x), keys)
    a.set_title("5. Cold worker: first publish µs, median (lower is better)")
    a.legend()

    a = ax[1][2]
    for c in ("qrpush", "phpredis"):
        pts = sorted((r["publishes"], r["rss_kb"]) for r in d.select("mem_curve", contender=c))
        if pts:
            a.plot([p for p, _ in pts], [v / 1024 for _, v in pts], marker="o", label=f"{c} VmRSS")
    a.set_xlabel("publishes in one FPM worker")
    a.set_ylabel("MB")
    a.set_title("6. Worker memory over publishes")
    a.legend()

    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--png")
    ap.add_argument("--git", default="unknown")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    with open(args.raw) as f:
        records = [json.loads(line) for line in f if line.strip()]
    with open(args.meta) as f:
        meta = json.load(f)
    d = Data(records)
    md = render(d, meta, args.git, args.quick)
    with open(args.md, "w") as f:
        f.write(md)
    sys.stdout.write(md)
    if d.missing:
        sys.stderr.write("report: missing measurements: " + "; ".join(sorted(set(d.missing))) + "\n")
        return 1
    if args.png:
        chart(d, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
