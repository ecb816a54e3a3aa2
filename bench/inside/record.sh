# shellcheck shell=bash
# bench/inside.sh: how a measurement becomes a record of RAW, and the order of contenders. Sourced.

# Appends a record: section, run, then the JSON object the command printed last (fails loudly).
record() { # section run key=value... -- command...
  local section=$1 run=$2 extra="" out line
  shift 2
  while [ "$1" != -- ]; do
    if [[ ${1#*=} =~ ^[0-9]+$ ]]; then extra+="\"${1%%=*}\":${1#*=},"; else extra+="\"${1%%=*}\":\"${1#*=}\","; fi
    shift
  done
  shift
  # A full run retries a failed measurement once (a loaded machine can stall anything for
  # seconds); the smoke run fails at once.
  if ! out=$("$@" 2>"$work/last.err"); then
    cat "$work/last.err" >&2
    [ "$quick" = 1 ] && die "[$section] failed: $*"
    say "[$section] failed, retrying once: $*"
    out=$("$@" 2>"$work/last.err") || { cat "$work/last.err" >&2; die "[$section] failed twice: $*"; }
  fi
  line=$(printf '%s\n' "$out" | grep '^{' | tail -1)
  [ -n "$line" ] || { printf '%s\n' "$out" >&2; die "[$section] printed no result: $*"; }
  printf '{"section":"%s","run":%d,%s%s\n' "$section" "$run" "$extra" "${line#\{}" >>"$raw"
}

# Rotates a list by the run number, so no contender always goes first.
rotate() { local k=$1 i; shift; local a=("$@"); for ((i = 0; i < ${#a[@]}; i++)); do echo "${a[(i + k) % ${#a[@]}]}"; done; }

# redis-benchmark as a JSON record (its --csv: "test","rps","avg_latency_ms","min","p50","p95","p99","max").
redis_bench() { # clients pipeline n size
  local csv
  csv=$("${cli_pin[@]}" redis-benchmark -h 127.0.0.1 -p "$redis_port" -a "$pass" -c "$1" -P "$2" -n "$3" --csv \
    PUBLISH bench:events "$("$php" -r 'require "bench/php/common.php"; echo bench_payload((int) $argv[1]);' "$4")" 2>/dev/null) || return 1
  # The test name holds the payload (which may contain '","'): take the numbers from the end.
  printf '%s\n' "$csv" | tail -1 | awk -F'","' -v c="$1" -v p="$2" -v n="$3" '{
    rps = $(NF - 6); p50 = $(NF - 3); p99 = $(NF - 1); gsub(/"/, "", rps); gsub(/"/, "", p99)
    if (rps + 0 <= 0) exit 1
    printf "{\"contender\":\"redis_benchmark_c%s_P%s\",\"n\":%d,\"ops\":%s,\"p50_us\":%.1f,\"p99_us\":%.1f,\"wall_us\":%.3f}\n", c, p, n, rps, p50 * 1000, p99 * 1000, 1e6 / rps
  }'
}
