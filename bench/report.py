#!/usr/bin/env python3
"""Turns bench/inside.sh's raw records into the markdown tables of BENCHMARKS.md and a PNG chart.

    python3 bench/report.py --raw OUT/latest.jsonl --meta OUT/latest.meta.json --md OUT/latest.md
                            [--png OUT/latest.png] [--git REV] [--quick] [--only "SECTIONS"]

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
# Section 7, one table: (record contender, topology, what is measured). Single publishes go round 12
# channels, 4 per shard; batches of 100 split 34/33/33 over the shards.
CLUSTER_SINGLE = [
    ("qrpush", "one Redis", "QrPush::publish"),
    ("qrpush_sharded", "Cluster", "QrPush::publish, `sharded` (SPUBLISH to the slot's owner)"),
    ("qrpush_global", "Cluster", "QrPush::publish, `global` (PUBLISH)"),
    ("phpredis", "one Redis", "phpredis pconnect publish()"),
    ("phpredis_cl", "Cluster", "phpredis RedisCluster::publish() (PUBLISH: it has no spublish) ⁴"),
    ("phpredis_cl_raw", "Cluster", "phpredis RedisCluster::rawCommand($ch, 'SPUBLISH', …) ⁴"),
    ("predis_cl", "Cluster", "predis cluster, SPUBLISH taught to its router ⁵"),
]
CLUSTER_BATCH = [
    ("qrpush_many", "one Redis", "QrPush::publishMany(100)"),
    ("qrpush_many_sharded", "Cluster", "QrPush::publishMany(100), `sharded`"),
    ("qrpush_many_global", "Cluster", "QrPush::publishMany(100), `global`"),
    ("phpredis_pipeline", "one Redis", "phpredis multi(Redis::PIPELINE), 100 publish()"),
    ("phpredis_cl_batch", "Cluster", "phpredis RedisCluster: 100 × rawCommand SPUBLISH (no pipeline) ⁴"),
    ("predis_cl_batch", "Cluster", "predis cluster pipeline(), 100 SPUBLISH ⁵"),
]
# The targets of issue 14, on the QrPush Cluster rows: (contender, field, bound, how it reads).
CLUSTER_TARGETS = {
    "qrpush_sharded": ("cpu_us", ("max", 1.1), "CPU/publish ≤ 1.1× one Redis"),
    "qrpush_global": ("cpu_us", ("max", 1.1), "CPU/publish ≤ 1.1× one Redis"),
    "qrpush_many_sharded": ("ops", ("min", 0.9), "messages/s ≥ 0.9× one Redis"),
    "qrpush_many_global": ("ops", ("min", 0.9), "messages/s ≥ 0.9× one Redis"),
}
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


def render(data, meta, git, quick, only=None):
    """The whole markdown report: one function per section, in the order of BENCHMARKS.md; with
    `only` (bench/run --only), the tables of those sections of bench/inside/ alone."""
    found = data.select("settings")
    settings = found[0] if found else {}
    tables = {
        "cli": [cli_section],
        "batches": [batch_section, array_section],
        "fpm": [],
        "per_request": [fpm_section, fpm_split_section],
        "cold": [lambda d: cold_section(d, settings)],
        "memory": [memory_section],
        "cluster": [cluster_section],
    }
    lines = machine_section(meta, settings, git, quick)
    for part in only or tables:
        for section in tables[part]:
            lines += section(data)
    if not only:
        lines += targets_section(data)
    return "\n".join(lines) + "\n"


def machine_section(meta, settings, git, quick):
    settings_text = (
        f"{settings.get('runs')} runs (php-fpm: {settings.get('fpm_runs')}); CLI loops of {settings.get('n_small')} (100 B) "
        f"and {settings.get('n_medium')} (4 KB) publishes; wrk -t2 -c{settings.get('wrk_connections')} "
        f"-d{settings.get('wrk_seconds')}s after {settings.get('wrk_warmup')} s warm-up; "
        f"{settings.get('cold_n')} cold processes; "
        f"{'client on CPU 0, Redis on the last CPU (taskset)' if settings.get('pinned') else 'no CPU pinning'}"
        + ("; **--quick smoke run: numbers are meaningless**" if quick else "")
    )
    return ["## Machine and software\n", table(["", ""], [
        ["CPU", f"{meta.get('cpu')} — {meta.get('nproc')} cores (nproc), {meta.get('mem_gb')} GB RAM"],
        ["kernel", meta.get("kernel")],
        ["userland", f"{meta.get('os')} (chroot from scripts/provision)"],
        ["PHP", f"{meta.get('php')} (CLI opcache {'on' if meta.get('opcache_cli') else 'off'}; php-fpm with Debian's php.ini, opcache on)"],
        ["QrPush", f"{meta.get('qrpush')}, release build ({git})"],
        ["phpredis / predis / ext-zmq", f"{meta.get('phpredis')} / {meta.get('predis')} / {meta.get('zmq')}"],
        ["Redis", f"{meta.get('redis')}, loopback TCP, `requirepass` set, no persistence"],
        ["nginx / wrk", f"{meta.get('nginx')} / {meta.get('wrk')}"],
        ["date", meta.get("date")],
        ["settings", settings_text],
    ])]


def cli_section(data):
    """1. The CLI loop, for 100 B and 4 KB messages."""
    lines = []
    for size, label in ((100, "small messages (100 B)"), (4096, "medium messages (4 KB)")):
        lines.append(f"\n## 1. CLI loop, {label}\n")
        lines.append("Sequential publishes in one PHP CLI process on a warm connection. Wall and CPU (getrusage: user + "
                     "system, all threads) are per publish; ratios are contender ÷ QrPush in the same run (below 1 = "
                     "the contender is cheaper).\n")
        rows = []
        for contender, name in CLI:
            match = dict(contender=contender, size=size)
            has_cpu = not contender.startswith("redis_benchmark")
            rows.append([
                name,
                fmt(data.metric("cli", "ops", **match)),
                fmt(data.metric("cli", "p50_us", **match)),
                fmt(data.metric("cli", "p99_us", **match)),
                fmt(data.metric("cli", "wall_us", **match), 2),
                fmt(data.metric("cli", "cpu_us", **match), 2) if has_cpu else "–",
                ratio(data.paired("cli", "wall_us", "contender", contender, "qrpush", size=size)),
                ratio(data.paired("cli", "cpu_us", "contender", contender, "qrpush", size=size)) if has_cpu else "–",
            ])
        lines.append(table(["contender", "ops/s", "p50 µs", "p99 µs", "wall µs/publish", "CPU µs/publish", "wall ÷ QrPush", "CPU ÷ QrPush"], rows))
    lines.append("\n¹ ext-zmq's `send()` only queues the message for libzmq's I/O thread: no round trip, no reply, "
                 "no delivery check (its CPU includes that thread). ² 8 clients × 16 pipelined commands: what this "
                 "Redis can absorb, not a client's cost.")
    return lines


def batch_section(data):
    """2. Batches of 10, 100 and 1000 messages, and a loop of single publishes."""
    lines = ["\n## 2. Batches (100 B messages)\n",
             "Messages per second; latency is per batch call. The loop is 100 single `QrPush::publish` calls.\n"]
    rows = []

    def row(name, contender, batch):
        match = dict(contender=contender, batch=batch)
        return [
            name,
            fmt(data.metric("batch", "ops", **match)),
            fmt(data.metric("batch", "p50_us", **match)),
            fmt(data.metric("batch", "p99_us", **match)),
            fmt(data.metric("batch", "cpu_us", **match), 3),
            ratio(data.paired("batch", "ops", "contender", contender, "qrpush_many", batch=batch)),
        ]

    for batch in (10, 100, 1000):
        for contender, name in BATCH:
            rows.append(row(f"{name} ({batch})", contender, batch))
    rows.append(row("loop of 100 × QrPush::publish", "qrpush_loop", 100))
    lines.append(table(["contender (batch size)", "messages/s", "p50 µs per call", "p99 µs per call", "CPU µs/message", "messages/s ÷ QrPush"], rows))
    return lines


def array_section(data):
    """3. A typical event array, encoded inside the timed call."""
    sample = data.select("array", contender="qrpush_array")
    json_bytes = sample[0].get("bytes") if sample else "?"
    lines = [f"\n## 3. Array payloads (a typical event, {json_bytes} B of JSON)\n",
             "The event array is built outside the timed call; encoding is inside it. QrPush's encoder is "
             "byte-identical to `json_encode(..., JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION)`.\n"]
    rows = []
    for contender, name in ARRAY:
        match = dict(contender=contender)
        rows.append([
            name, fmt(data.metric("array", "ops", **match)), fmt(data.metric("array", "p50_us", **match)),
            fmt(data.metric("array", "p99_us", **match)),
            fmt(data.metric("array", "wall_us", **match), 2), fmt(data.metric("array", "cpu_us", **match), 2),
            ratio(data.paired("array", "cpu_us", "contender", contender, "qrpush_array")),
        ])
    lines.append(table(["contender", "ops/s", "p50 µs", "p99 µs", "wall µs", "CPU µs", "CPU ÷ QrPush array"], rows))
    return lines


def cluster_section(data):
    """7. One Redis and a Redis Cluster of 3 primaries, side by side, from the same runs."""
    lines = ["\n## 7. Redis Cluster (3 primaries) beside one Redis\n",
             "The same runs, every contender once per run in turn. Single publishes (100 B and 4 KB) go round 12 "
             "channels, 4 on each primary, so consecutive publishes hit the 3 shards in turn; batches of 100 × 100 B "
             "split 34/33/33 over the shards. The 3 Cluster nodes share the last CPU as the single Redis does "
             "(client on CPU 0). Per message: wall, and CPU of the PHP process (getrusage, user + system); "
             "ratios are ÷ QrPush on one Redis, taken within each run (single: `QrPush::publish`; batches: "
             "`publishMany(100)`), then the median.\n"]
    rows = []

    def row(what, contender, topology, name, base, **match):
        cpu_ratio = data.paired("cluster", "cpu_us", "contender", contender, base, **match)
        ops_ratio = data.paired("cluster", "ops", "contender", contender, base, **match)
        status = ""
        if contender in CLUSTER_TARGETS:
            field, (kind, bound), text = CLUSTER_TARGETS[contender]
            value = cpu_ratio if field == "cpu_us" else ops_ratio
            if value is None:
                status = f"{text}: –"
            else:
                met = value <= bound if kind == "max" else value >= bound
                status = f"{'✓' if met else '✗'} {text} ({value:.3f}×)"
        rows.append([
            what, topology, name,
            fmt(data.metric("cluster", "ops", contender=contender, **match)),
            fmt(data.metric("cluster", "p50_us", contender=contender, **match)),
            fmt(data.metric("cluster", "wall_us", contender=contender, **match), 2),
            fmt(data.metric("cluster", "cpu_us", contender=contender, **match), 3),
            ratio(cpu_ratio), ratio(ops_ratio), status,
        ])

    for size, label in ((100, "single, 100 B"), (4096, "single, 4 KB")):
        for contender, topology, name in CLUSTER_SINGLE:
            row(label, contender, topology, name, "qrpush", size=size)
    for contender, topology, name in CLUSTER_BATCH:
        row("batch of 100 × 100 B", contender, topology, name, "qrpush_many", batch=100)
    lines.append(table(["what", "Redis", "contender", "messages/s", "p50 µs per call", "wall µs/message",
                        "CPU µs/message", "CPU ÷ QrPush one Redis", "messages/s ÷ QrPush one Redis",
                        "target (issue 14)"], rows))
    lines.append("\n⁴ phpredis 6's `RedisCluster` has no `spublish()`; its `publish()` sends the classic PUBLISH, which "
                 "the Cluster broadcasts to every node. `rawCommand()` takes a key as its first argument and sends "
                 "the command to that key's slot owner, so `rawCommand($channel, 'SPUBLISH', $channel, $message)` "
                 "reaches the right node (checked: no MOVED in `INFO errorstats`). `RedisCluster` refuses "
                 "`multi(Redis::PIPELINE)`, so a batch is one round trip per message. "
                 "⁵ predis 2.4 refuses PUBLISH on a Cluster (\"Cannot use 'PUBLISH' with redis-cluster\") and has no "
                 "SPUBLISH command; registering a handler for SPUBLISH with its cluster strategy "
                 "(`setCommandHandler`) and sending `RawCommand::create('SPUBLISH', …)` works, pipelines included.")
    return lines


def ms(latency_us):
    return fmt(latency_us / 1000 if latency_us else None, 2)


def fpm_section(data):
    """4. Per request under php-fpm behind nginx, against the no-op endpoint of the same run."""
    connections = (data.select("fpm") or [{}])[0].get("connections", "?")
    lines = ["\n## 4. Per request under php-fpm (the number users care about)\n",
             f"nginx (1 worker) → php-fpm (pm static, 2 workers, opcache on) → Redis with a password; wrk -t2 -c{connections}; "
             "one 100 B publish per request. *Extra µs* = 1/req·s − 1/req·s of the no-op (machine time per request, "
             "everything included); *worker CPU* = utime + stime of the two FPM workers per request (/proc); "
             "*Redis CPU* = the same for redis-server.\n"]
    by_run = defaultdict(dict)
    for record in data.select("fpm"):
        by_run[record["run"]][record["endpoint"]] = record
    rows = []
    for endpoint, name in FPM:
        match = dict(endpoint=endpoint)
        # Extra µs per request = 1e6/rps − 1e6/rps of the no-op, per run, then the median.
        extra_us, extra_worker_cpu = [], []
        for run in by_run.values():
            if endpoint in run and "noop" in run:
                extra_us.append(1e6 / run[endpoint]["rps"] - 1e6 / run["noop"]["rps"])
                extra_worker_cpu.append(run[endpoint]["worker_cpu_us"] - run["noop"]["worker_cpu_us"])
        rows.append([
            name, fmt(data.metric("fpm", "rps", **match)),
            ms(data.metric("fpm", "p50_us", **match)), ms(data.metric("fpm", "p99_us", **match)),
            "–" if endpoint == "noop" else fmt(med(extra_us)),
            fmt(data.metric("fpm", "worker_cpu_us", **match)),
            "–" if endpoint == "noop" else fmt(med(extra_worker_cpu)),
            fmt(data.metric("fpm", "redis_cpu_us", **match)),
            ratio(data.paired("fpm", "rps", "endpoint", endpoint, "qrpush")),
        ])
    lines.append(table(["endpoint", "req/s", "p50 ms", "p99 ms", "extra µs/request", "worker CPU µs/req",
                        "extra worker CPU µs", "Redis CPU µs/req", "req/s ÷ QrPush"], rows))
    lines.append("\n³ `redis.pconnect.echo_check_liveness=0` (set with ini_set in that endpoint only): phpredis at its "
                 "fastest, but a pooled connection the server closed while idle then fails a request instead of being "
                 "replaced. phpredis's default checks every reused connection with an ECHO round trip (plus AUTH when "
                 "the password is in the connect options); QrPush checks with a non-blocking `recv(MSG_PEEK)`, no round trip.")
    return lines


def fpm_split_section(data):
    """4b. TLS against plain TCP with Redis on a core of its own (absent without CPU pinning)."""
    if not data.select("fpm_split"):
        return []
    lines = ["\n### 4b. TLS against plain TCP, Redis on a core of its own\n",
             "The same endpoints with the FPM workers and nginx confined to CPU 0, and Redis and wrk (-t1) on the "
             "last CPU, which they do not saturate; as when Redis runs on another host, req/s then measures the PHP "
             "side only, and Redis's own TLS work shows in its CPU column instead of taking req/s away from PHP. "
             "Medians of more runs than section 4.\n"]
    rows = []
    for endpoint, name in (("noop", "no-op (baseline)"), ("qrpush_client", "new QrPush\\Client(redis://…) per request"),
                           ("qrpush_client_tls", "new QrPush\\Client(rediss://…) per request (TLS)")):
        match = dict(endpoint=endpoint)
        rows.append([name, fmt(data.metric("fpm_split", "rps", **match)), ms(data.metric("fpm_split", "p50_us", **match)),
                     fmt(data.metric("fpm_split", "worker_cpu_us", **match)), fmt(data.metric("fpm_split", "redis_cpu_us", **match)),
                     ratio(data.paired("fpm_split", "rps", "endpoint", endpoint, "qrpush_client"))])
    lines.append(table(["endpoint", "req/s", "p50 ms", "worker CPU µs/req", "Redis CPU µs/req", "req/s ÷ TCP"], rows))
    return lines


def cold_section(data, settings):
    """5. The first publish of a fresh process, with and without a password."""
    processes = settings.get("cold_n", "?")
    lines = ["\n## 5. Cold worker: the first publish of a fresh process\n",
             f"Median over {processes} fresh `php` processes each: object setup + TCP connect + AUTH (when a password is set) + "
             "PUBLISH, timed inside the process (PHP startup excluded); then the second publish on the warm connection.\n"]
    rows = []
    for auth, auth_label in ((1, "with password"), (0, "no password")):
        qrpush_first = data.metric("cold", "first_us", contender="qrpush", auth=auth)
        for contender, name in COLD:
            if contender == "qrpush_tls" and auth == 0:
                continue
            match = dict(contender=contender, auth=auth)
            first = data.metric("cold", "first_us", **match)
            best = min((record["first_us"] for record in data.select("cold", **match)), default=None)
            rows.append([name, auth_label, fmt(first), fmt(best), fmt(data.metric("cold", "second_us", **match)),
                         ratio(first / qrpush_first if first and qrpush_first else None)])
    lines.append(table(["contender", "Redis", "first publish µs (median)", "best of all", "second publish µs", "first ÷ QrPush (medians)"], rows))
    lines.append("\nOn a busy machine the distribution is bimodal (a preempted process takes milliseconds): the "
                 "best of all processes is the undisturbed cost.")
    return lines


def memory_curve(data):
    """publishes → contender → the memory record after that many publishes in one worker."""
    curve = defaultdict(dict)
    for record in data.select("mem_curve"):
        curve[record["publishes"]][record["contender"]] = record
    return curve


def memory_section(data):
    """6. php-fpm worker memory with and without QrPush, and over many publishes."""
    lines = ["\n## 6. Memory of a php-fpm worker\n",
             "VmRSS counts every page a worker has touched, including shared ones (opcache's shared memory, "
             "the mapped code of PHP, its extensions and libqrpush.so, counted in full in every worker), so Pss "
             "(shared pages divided among the processes that map them) and the private part (Private_Clean + "
             "Private_Dirty from smaps_rollup) are shown too. Medians over the pool's workers, after the same "
             "number of warm-up rounds (wrk, 1 s each).\n"]
    fields = ("rss_kb", "pss_kb", "private_kb")
    without = {field: data.metric("mem", field, kind="noext") for field in fields}
    rows = []
    for kind, name in MEM:
        row = [name]
        for field in fields:
            value = data.metric("mem", field, kind=kind)
            row += [fmt(value), "–" if kind == "noext" or value is None or without[field] is None else f"{value - without[field]:+,.0f}"]
        so_resident, so_private = data.metric("mem", "so_rss_kb", kind=kind), data.metric("mem", "so_private_kb", kind=kind)
        row.append("–" if kind == "noext" else f"{fmt(so_resident)} / {fmt(so_private)}")
        rows.append(row)
    lines.append(table(["php-fpm worker", "VmRSS kB", "Δ", "Pss kB", "Δ", "private kB", "Δ",
                        "libqrpush.so pages kB (resident / private)"], rows))
    lines.append("\nOne worker (pm static, 1 worker per contender) publishing 100 B messages, memory sampled after "
                 "every step:\n")
    curve = memory_curve(data)
    rows = []
    for publishes in sorted(curve):
        qrpush, phpredis = curve[publishes].get("qrpush", {}), curve[publishes].get("phpredis", {})
        rows.append([f"{publishes:,}", fmt(qrpush.get("rss_kb")), fmt(qrpush.get("pss_kb")), fmt(qrpush.get("private_kb")),
                     fmt(qrpush.get("so_rss_kb")),
                     fmt(phpredis.get("rss_kb")), fmt(phpredis.get("pss_kb")), fmt(phpredis.get("private_kb"))])
    if not rows:
        data.missing.append("mem_curve")
    lines.append(table(["publishes", "QrPush VmRSS kB", "QrPush Pss kB", "QrPush private kB", "of it libqrpush.so kB",
                        "phpredis VmRSS kB", "phpredis Pss kB", "phpredis private kB"], rows))
    return lines


def ratio3(value):
    """Targets are decided on the third decimal: show it."""
    return "–" if value is None else f"{value:.3f}×"


# Targets read from one ratio of the same run: (target, section, field, key, a, b, match, bound, how
# it is measured). bound: ("max", x) for a ÷ b ≤ x, ("min", x) for a ÷ b ≥ x, None for information.
RATIO_TARGETS = [
    ("single publish wall ≤ 1.05× raw-socket floor", "cli", "wall_us", "contender", "qrpush", "php_floor", dict(size=100),
     ("max", 1.05), "QrPush ÷ raw PHP socket, wall µs, 100 B"),
    ("  (same, p50 latency)", "cli", "p50_us", "contender", "qrpush", "php_floor", dict(size=100),
     ("max", 1.05), "QrPush ÷ raw PHP socket, p50, 100 B"),
    ("single publish wall ≤ phpredis pconnect", "cli", "wall_us", "contender", "qrpush", "phpredis", dict(size=100),
     ("max", 1.0), "QrPush ÷ phpredis, wall µs, 100 B"),
    ("CPU per publish ≤ phpredis", "cli", "cpu_us", "contender", "qrpush", "phpredis", dict(size=100),
     ("max", 1.0), "QrPush ÷ phpredis, CPU µs, 100 B"),
    ("  (same, 4 KB)", "cli", "cpu_us", "contender", "qrpush", "phpredis", dict(size=4096),
     ("max", 1.0), "QrPush ÷ phpredis, CPU µs, 4 KB"),
    ("publishMany(100) ≥ 10× the single-publish loop", "batch", "ops", "contender", "qrpush_many", "qrpush_loop", dict(batch=100),
     ("min", 10), "messages/s, publishMany(100) ÷ loop"),
    ("publishMany(100) ≥ phpredis pipeline", "batch", "ops", "contender", "qrpush_many", "phpredis_pipeline", dict(batch=100),
     ("min", 1.0), "messages/s, QrPush ÷ phpredis, batch 100"),
] + [
    (f"php-fpm req/s ≥ {need:g}× {label}", "fpm", "rps", "endpoint", "qrpush", endpoint, {}, ("min", need), f"req/s, QrPush ÷ {endpoint}")
    for endpoint, need, label in (("phpredis_pconnect", 1.0, "phpredis pconnect (password at connect)"),
                                  ("phpredis_pconnect_auth", 1.0, "phpredis pconnect + auth()"),
                                  ("predis", 1.5, "predis"),
                                  ("phpredis_connect", 1.5, "phpredis connect per request"))
] + [
    ("  (info) vs phpredis without its ECHO check", "fpm", "rps", "endpoint", "qrpush", "phpredis_pconnect_nocheck", {},
     None, "req/s, QrPush ÷ phpredis_pconnect_nocheck"),
]
TLS_TARGETS = [
    ("TLS: persistent rediss:// per request within 10% of plain TCP", "fpm_split", "rps", "endpoint", "qrpush_client_tls",
     "qrpush_client", {}, ("min", 0.9), "php-fpm req/s, Client(rediss://) ÷ Client(redis://), Redis on its own core (4b)"),
    ("  (info) the same, Redis sharing the cores with PHP", "fpm", "rps", "endpoint", "qrpush_client_tls",
     "qrpush_client", {}, None, "php-fpm req/s, Client(rediss://) ÷ Client(redis://), section 4"),
    ("  (info) TLS single publish in the CLI loop", "cli", "wall_us", "contender", "qrpush_tls", "qrpush", dict(size=100),
     None, "wall µs, QrPush TLS ÷ TCP, 100 B"),
]


def targets_section(data):
    """Every target of the benchmark, with the ratio (from the same run) it is read from."""
    rows = []

    def target(name, value, met, measured_as):
        rows.append([name, measured_as, "–" if value is None else value, "n/a" if met is None else ("**met**" if met else "**missed**")])

    def ratio_targets(targets):
        for name, section, field, key, a, b, match, bound, measured_as in targets:
            value = data.paired(section, field, key, a, b, **match)
            met = None
            if bound is not None and value is not None:
                met = value <= bound[1] if bound[0] == "max" else value >= bound[1]
            target(name, ratio3(value), met, measured_as)

    ratio_targets(RATIO_TARGETS)

    extra_us = defaultdict(list)
    for run in {record["run"] for record in data.select("fpm")}:
        endpoints = {record["endpoint"]: record for record in data.select("fpm", run=run)}
        if {"noop", "qrpush", "phpredis_pconnect"} <= endpoints.keys():
            noop_us = 1e6 / endpoints["noop"]["rps"]
            extra_us["qrpush"].append(1e6 / endpoints["qrpush"]["rps"] - noop_us)
            extra_us["phpredis"].append(1e6 / endpoints["phpredis_pconnect"]["rps"] - noop_us)
    qrpush_extra, phpredis_extra = med(extra_us["qrpush"]), med(extra_us["phpredis"])
    target("per-request overhead over no-op ≤ phpredis pconnect's",
           None if qrpush_extra is None else f"{qrpush_extra:.0f} µs vs {phpredis_extra:.0f} µs",
           None if qrpush_extra is None else qrpush_extra <= phpredis_extra, "extra µs/request (1/req·s − 1/req·s no-op)")

    ratio_targets(TLS_TARGETS)

    for field, label in (("rss_kb", "VmRSS"), ("pss_kb", "Pss"), ("private_kb", "private")):
        used, without = data.metric("mem", field, kind="ext_used"), data.metric("mem", field, kind="noext")
        known = used is not None and without is not None
        target(f"extension RSS overhead ≤ 1 MB per worker ({label})", f"{used - without:+,.0f} kB" if known else None,
               used - without <= 1024 if known else None, f"{label} with QrPush (used) − without")
    curve = memory_curve(data)
    steps = sorted(curve)
    if len(steps) >= 3:
        first, last = curve[steps[1]].get("qrpush", {}), curve[steps[-1]].get("qrpush", {})
        if first and last:
            growth = last["rss_kb"] - first["rss_kb"]
            target(f"flat after {steps[-1]:,} publishes", f"{growth:+,} kB", growth <= 128,
                   f"QrPush worker VmRSS at {steps[-1]:,} − at {steps[1]:,} (≤ 128 kB)")
    return ["\n## Targets of issue 5 (ratios from the same run)\n",
            table(["target", "measured as", "value", "status"], rows),
            "\nA ratio within a few percent of 1 on a loaded machine is a tie, whichever side of the line it lands."]


def chart(data, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(18, 10))
    fig.suptitle("QrPush vs phpredis, predis, ext-zmq and raw floors (medians)", fontsize=14)

    a = ax[0][0]
    keys = [k for k, _ in CLI if not k.startswith("redis_benchmark") and k != "zmq"]
    wall = [data.metric("cli", "wall_us", contender=k, size=100) or 0 for k in keys]
    cpu = [data.metric("cli", "cpu_us", contender=k, size=100) or 0 for k in keys]
    x = range(len(keys))
    a.bar([i - 0.2 for i in x], wall, 0.4, label="wall µs")
    a.bar([i + 0.2 for i in x], cpu, 0.4, label="CPU µs")
    a.set_xticks(list(x), keys, rotation=30, ha="right")
    a.set_title("1. CLI: µs per 100 B publish (lower is better)")
    a.legend()

    a = ax[0][1]
    for k, name in BATCH:
        ys = [data.metric("batch", "ops", contender=k, batch=b) for b in (10, 100, 1000)]
        a.plot([10, 100, 1000], ys, marker="o", label=name)
    loop = data.metric("batch", "ops", contender="qrpush_loop", batch=100)
    if loop:
        a.axhline(loop, color="grey", linestyle="--", label="loop of QrPush::publish")
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("batch size")
    a.set_title("2. Batches: messages/s (higher is better)")
    a.legend(fontsize=8)

    a = ax[0][2]
    keys = [k for k, _ in ARRAY]
    a.bar(range(len(keys)), [data.metric("array", "cpu_us", contender=k) or 0 for k in keys], color="tab:purple")
    a.set_xticks(range(len(keys)), keys, rotation=30, ha="right")
    a.set_title("3. Array event: CPU µs per publish (lower is better)")

    a = ax[1][0]
    keys = [k for k, _ in FPM]
    a.barh(range(len(keys)), [data.metric("fpm", "rps", endpoint=k) or 0 for k in keys],
           color=["grey" if k == "noop" else "tab:green" if k == "qrpush" else "tab:blue" for k in keys])
    a.set_yticks(range(len(keys)), keys)
    a.invert_yaxis()
    a.set_title("4. php-fpm + nginx: requests/s (higher is better)")

    a = ax[1][1]
    keys = [k for k, _ in COLD]
    x = range(len(keys))
    a.bar([i - 0.2 for i in x], [data.metric("cold", "first_us", contender=k, auth=1) or 0 for k in keys], 0.4, label="with password")
    a.bar([i + 0.2 for i in x], [data.metric("cold", "first_us", contender=k, auth=0) or 0 for k in keys], 0.4, label="no password")
    for off, auth in ((-0.2, 1), (0.2, 0)):
        best = [min((r["first_us"] for r in data.select("cold", contender=k, auth=auth)), default=0) for k in keys]
        a.scatter([i + off for i in x], best, color="black", zorder=3, label="best process" if auth else None)
    a.set_xticks(list(x), keys)
    a.set_title("5. Cold worker: first publish µs, median (lower is better)")
    a.legend()

    a = ax[1][2]
    for c in ("qrpush", "phpredis"):
        pts = sorted((r["publishes"], r["rss_kb"]) for r in data.select("mem_curve", contender=c))
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
    ap.add_argument("--only", help="space-separated sections of bench/inside/ (bench/run --only)")
    args = ap.parse_args()
    with open(args.raw) as f:
        records = [json.loads(line) for line in f if line.strip()]
    with open(args.meta) as f:
        meta = json.load(f)
    data = Data(records)
    md = render(data, meta, args.git, args.quick, args.only.split() if args.only else None)
    with open(args.md, "w") as f:
        f.write(md)
    sys.stdout.write(md)
    if data.missing:
        sys.stderr.write("report: missing measurements: " + "; ".join(sorted(set(data.missing))) + "\n")
        return 1
    if args.png:
        chart(data, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
