#!/usr/bin/env bash
# The measuring half of bench/run, run where PHP and redis live (the chroot, or natively with
# QRPUSH_NATIVE=1). Starts its own servers on free loopback ports, stops them by pid on exit, and
# appends one JSON record per measurement to RAW (bench/report.py turns them into tables).
#   bash bench/inside.sh RAW META      settings from BENCH_* variables (see bench/run)
set -euo pipefail
raw=$1 meta=$2
cd "$(dirname "$0")/.."
root=$PWD
source "$root/scripts/lib.sh"

quick=${BENCH_QUICK:-0}
php=${BENCH_PHP:-$(qr_php_path nts php)}
fpm_bin=${BENCH_PHP_FPM:-$(qr_php_path nts php-fpm)}
ext=${BENCH_EXT:-$root/target/nts/release/libqrpush.so}
floor=${BENCH_RUST_FLOOR:-$root/target/bench/raw_floor}
if [ "$quick" = 1 ]; then
  def_runs=1 def_fpm_runs=1 n_small=300 n_medium=200 n_batch=2000 n_loop=200 n_array=300
  rb_n=2000 rb_ceiling_n=20000 wrk_d=1 wrk_warm=0 cold_n=2 mem_step=500 mem_steps=2
else
  def_runs=5 def_fpm_runs=3 n_small=50000 n_medium=20000 n_batch=100000 n_loop=20000 n_array=30000
  rb_n=100000 rb_ceiling_n=1000000 wrk_d=5 wrk_warm=1 cold_n=21 mem_step=100000 mem_steps=10
fi
runs=${BENCH_RUNS:-$def_runs}
fpm_runs=${BENCH_FPM_RUNS:-$def_fpm_runs}
wrk_d=${BENCH_WRK_SECONDS:-$wrk_d}
wrk_conn=${BENCH_WRK_CONNECTIONS:-8}

# The bench's own voice (scripts/lib.sh's helpers die through this die too).
say() { printf '\033[1m[bench]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[bench] error:\033[0m %s\n' "$*" >&2; exit 1; }

[ -f "$ext" ] || die "no extension at $ext (bash scripts/build nts)"
[ -x "$floor" ] || die "no Rust floor client at $floor"
for tool in "$php" "$fpm_bin" redis-server redis-cli redis-benchmark nginx wrk taskset openssl; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
[ "$(id -u)" = 0 ] && as_root=1 || as_root=0

work=$(mktemp -d /tmp/qrpush-bench.XXXXXX)
pids=()
cleanup() {
  local status=$? i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do wait "${pids[i]}" 2>/dev/null || true; done
  if [ "$status" != 0 ]; then
    for log in "$work"/*.log "$work"/*.out; do [ -s "$log" ] && { echo "--- $log (tail) ---"; tail -8 "$log"; } >&2; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Pinning on 2+ cores: clients on CPU 0, Redis and the ZMQ drainer on the last CPU.
ncpu=$(nproc)
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$ncpu" -ge 2 ]; then
  cli_pin=(taskset -c 0) srv_pin=(taskset -c $((ncpu - 1)))
else
  cli_pin=() srv_pin=()
fi

# The sections (bench/inside/), in the order they run; they share this file's variables and helpers.
# BENCH_SECTIONS (bench/run --only) runs some of them; servers and record always come first.
sections=${BENCH_SECTIONS:-cli batches cluster fpm per_request cold memory}
for part in servers record $sections; do
  # shellcheck source=/dev/null
  source "$root/bench/inside/$part.sh"
done
say "measurements done"
