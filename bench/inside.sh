#!/usr/bin/env bash
# The measuring half of bench/run, run where PHP and redis live (the chroot, or natively with
# QRPUSH_NATIVE=1). Starts its own servers on free loopback ports, stops them by pid on exit, and
# appends one JSON record per measurement to RAW (bench/report.py turns them into tables).
#   bash bench/inside.sh RAW META      settings from BENCH_* variables (see bench/run)
set -euo pipefail
raw=$1 meta=$2
cd "$(dirname "$0")/.."
root=$PWD

quick=${BENCH_QUICK:-0}
php=${BENCH_PHP:-php8.4}
fpm_bin=${BENCH_PHP_FPM:-php-fpm8.4}
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

# A free loopback port (never 2024): the kernel's choice for an ephemeral bind.
free_port() {
  local p
  while :; do
    p=$("$php" -n -r '$s = stream_socket_server("tcp://127.0.0.1:0"); echo explode(":", stream_socket_get_name($s, false))[1];')
    [ "$p" != 2024 ] && { echo "$p"; return; }
  done
}

# Pinning on 2+ cores: clients on CPU 0, Redis and the ZMQ drainer on the last CPU.
ncpu=$(nproc)
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$ncpu" -ge 2 ]; then
  cli_pin=(taskset -c 0) srv_pin=(taskset -c $((ncpu - 1)))
else
  cli_pin=() srv_pin=()
fi

# ---- servers ---------------------------------------------------------------------------------------
pass=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
redis_port=$(free_port)
tls_port=$(free_port)
open_port=$(free_port)
zmq_port=$(free_port)
http_port=$(free_port)
export BENCH_REDIS_PORT=$redis_port BENCH_REDIS_PASS=$pass BENCH_ZMQ_PORT=$zmq_port BENCH_EXT=$ext
export BENCH_TLS_PORT=$tls_port BENCH_TLS_CA=$work/tls/ca.pem

# A throw-away CA and a server certificate for 127.0.0.1 (P-256, like the PHP TLS tests).
mkdir -p "$work/tls"
(
  cd "$work/tls"
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj "/CN=QrPush bench CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  openssl req -new "${ec[@]}" -keyout server.key -out server.csr -subj /CN=localhost
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x1 -days 2 -out server.pem -extfile server.ext
) >"$work/openssl.log" 2>&1 || die "making the TLS test certificates failed: $(tail -3 "$work/openssl.log")"

start_redis() { # port [password [more redis-server options...]]
  local port=$1 auth=()
  [ -n "${2:-}" ] && auth=(--requirepass "$2")
  "${srv_pin[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --logfile "$work/redis-$port.log" "${auth[@]}" "${@:3}" &
  pids+=($!)
  for _ in $(seq 100); do
    redis-cli -p "$port" ${2:+-a "$2" --no-auth-warning} ping 2>/dev/null | grep -q PONG && return
    sleep 0.05
  done
  die "redis-server on port $port did not start"
}
say "redis-server with a password on 127.0.0.1:$redis_port (TLS on :$tls_port), without on :$open_port; ZMQ PULL on :$zmq_port"
start_redis "$redis_port" "$pass" --tls-port "$tls_port" --tls-cert-file "$work/tls/server.pem" \
  --tls-key-file "$work/tls/server.key" --tls-ca-cert-file "$work/tls/ca.pem" --tls-auth-clients no
redis_pid=${pids[-1]}
start_redis "$open_port"
"${srv_pin[@]}" "$php" bench/php/zmq_pull.php "$zmq_port" 2>"$work/zmq.log" &
pids+=($!)

qr_url="redis://:$pass@127.0.0.1:$redis_port"
qr_tls=(-d "qrpush.url=rediss://:$pass@127.0.0.1:$tls_port" -d "qrpush.tls_ca_file=$work/tls/ca.pem")
qr_ini=(-d "extension=$ext" -d qrpush.timeout=5 -d qrpush.connect_timeout=5)
php_cli=("${cli_pin[@]}" "$php" "${qr_ini[@]}" -d "qrpush.url=$qr_url" -d memory_limit=1G)

"$php" -d "extension=$ext" bench/php/meta.php >"$meta"
: >"$raw"
printf '{"section":"settings","run":0,"quick":%d,"runs":%d,"fpm_runs":%d,"n_small":%d,"n_medium":%d,"n_batch":%d,"n_loop":%d,"n_array":%d,"wrk_seconds":%d,"wrk_warmup":%d,"wrk_connections":%d,"cold_n":%d,"mem_step":%d,"mem_steps":%d,"pinned":%d}\n' \
  "$quick" "$runs" "$fpm_runs" "$n_small" "$n_medium" "$n_batch" "$n_loop" "$n_array" "$wrk_d" "$wrk_warm" "$wrk_conn" \
  "$cold_n" "$mem_step" "$mem_steps" "$((${#cli_pin[@]} > 0))" >>"$raw"

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

# ---- 1. CLI loop -------------------------------------------------------------------------------------
t0=$SECONDS
for ((run = 1; run <= runs; run++)); do
  say "1. CLI loop, run $run/$runs"
  for size in 100 4096; do
    n=$n_small; [ "$size" = 4096 ] && n=$n_medium
    for who in $(rotate "$run" qrpush phpredis predis zmq php_floor rust_floor qrpush_tls); do
      if [ "$who" = rust_floor ]; then
        record cli "$run" size="$size" -- "${cli_pin[@]}" "$floor" 127.0.0.1 "$redis_port" "$pass" "$n" "$size"
      elif [ "$who" = qrpush_tls ]; then
        record cli "$run" size="$size" -- env BENCH_LABEL=qrpush_tls "${php_cli[@]}" "${qr_tls[@]}" \
          bench/php/cli.php loop qrpush "$size" "$n"
      else
        record cli "$run" size="$size" -- "${php_cli[@]}" bench/php/cli.php loop "$who" "$size" "$n"
      fi
    done
    record cli "$run" size="$size" -- redis_bench 1 1 "$rb_n" "$size"
    record cli "$run" size="$size" -- redis_bench 8 16 "$rb_ceiling_n" "$size"
  done
done
say "CLI loops took $((SECONDS - t0)) s"

# ---- 2. batches and 3. array payloads -------------------------------------------------------------------
t0=$SECONDS
for ((run = 1; run <= runs; run++)); do
  say "2-3. batches and array payloads, run $run/$runs"
  for batch in 10 100 1000; do
    for who in $(rotate "$run" qrpush_many phpredis_pipeline predis_pipeline); do
      record batch "$run" batch="$batch" -- "${php_cli[@]}" bench/php/cli.php batch "$who" "$batch" "$n_batch"
    done
  done
  record batch "$run" batch=100 -- "${php_cli[@]}" bench/php/cli.php batch qrpush_loop 100 "$n_loop"
  for who in $(rotate "$run" qrpush_array qrpush_json_encode phpredis_json_encode json_encode_only); do
    record array "$run" -- "${php_cli[@]}" bench/php/cli.php array "$who" "$n_array"
  done
done
say "batches and arrays took $((SECONDS - t0)) s"

# ---- php-fpm + nginx -------------------------------------------------------------------------------------
# Master "bench" (QrPush loaded): pool main (the per-request benchmark, 2 workers) and pools
# memq/memr (the 1M-publish curves, 1 worker each). Masters "ext" and "noext": one pool of 2 workers
# each, identical but for QrPush (the memory comparison; shared pages are split the same way).
# Debian's php-fpm php.ini and conf.d (opcache, phpredis, zmq) everywhere.
fpm_pool() { # name workers
  printf '[%s]\nlisten = %s/fpm-%s.sock\nlisten.mode = 0666\npm = static\npm.max_children = %d\n' "$1" "$work" "$1" "$2"
  printf 'clear_env = yes\nenv[BENCH_REDIS_PORT] = %s\nenv[BENCH_REDIS_PASS] = %s\nenv[BENCH_ZMQ_PORT] = %s\nenv[BENCH_EXT] = %s\n' \
    "$redis_port" "$pass" "$zmq_port" "$ext"
  printf 'env[BENCH_TLS_PORT] = %s\nenv[BENCH_TLS_CA] = %s\n' "$tls_port" "$work/tls/ca.pem"
  printf 'php_admin_value[max_execution_time] = 0\nphp_admin_value[memory_limit] = 256M\n'
  [ "$as_root" = 1 ] && printf 'user = root\ngroup = root\n'
  echo
}
start_fpm() { # master-name ext(0|1) pool:workers...
  local name=$1 with_ext=$2 conf="$work/fpm-$1.conf" args=() p
  shift 2
  printf '[global]\nerror_log = %s/fpm-%s.log\ndaemonize = no\npid = %s/fpm-%s.pid\n\n' "$work" "$name" "$work" "$name" >"$conf"
  for p in "$@"; do fpm_pool "${p%%:*}" "${p##*:}" >>"$conf"; done
  [ "$with_ext" = 1 ] && args=("${qr_ini[@]}" -d "qrpush.url=$qr_url")
  [ "$as_root" = 1 ] && args+=(-R)
  "$fpm_bin" -F -y "$conf" "${args[@]}" >"$work/fpm-$name.out" 2>&1 &
  pids+=($!)
  fpm_master[$name]=$!
}
declare -A fpm_master
wait_sockets() { # pool...
  local s
  for _ in $(seq 200); do
    for s in "$@"; do [ -S "$work/fpm-$s.sock" ] || { sleep 0.05; continue 2; }; done
    return
  done
  die "php-fpm did not open its sockets ($*)"
}

start_fpm bench 1 main:2 memq:1 memr:1
start_fpm ext 1 ext:2
start_fpm noext 0 noext:2
wait_sockets main ext memq memr noext

mkdir -p "$work/nginx"
{
  [ "$as_root" = 1 ] && echo 'user root;'
  cat <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  fastcgi_temp_path $work/nginx/fastcgi;
  proxy_temp_path $work/nginx/proxy;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$http_port;
NGINX
  for pool in main ext memq memr noext; do
    cat <<NGINX
    location ~ ^/$pool(/[a-z_]+\.php)\$ {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $root/bench/www\$1;
      fastcgi_read_timeout 600s;
      fastcgi_pass unix:$work/fpm-$pool.sock;
    }
NGINX
  done
  echo '  }'
  echo '}'
} >"$work/nginx.conf"
nginx -p "$work/nginx" -c "$work/nginx.conf" 2>"$work/nginx.out" &
pids+=($!)
nginx_master=$!
for _ in $(seq 100); do "$php" -n -r '@fsockopen("127.0.0.1", (int) $argv[1]) or exit(1);' "$http_port" && break; sleep 0.05; done
base="http://127.0.0.1:$http_port"

# The workers of one pool of our own masters (never another php-fpm running on the machine).
workers_of() { # pool
  local m
  for m in "${fpm_master[@]}"; do pgrep -P "$m" -f "php-fpm: pool $1\$" || true; done | sort -n
}
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
tck=$(getconf CLK_TCK)

# ---- 4. per request under php-fpm ------------------------------------------------------------------------
endpoints=(noop qrpush phpredis_pconnect phpredis_pconnect_auth phpredis_pconnect_nocheck predis phpredis_connect zmq
  qrpush_client qrpush_client_tls)
for e in "${endpoints[@]}"; do
  body=$("$php" bench/php/http.php "$base/main/$e.php") || die "endpoint $e.php failed"
  [ "$body" = ok ] || die "endpoint $e.php answered '$body'"
done
mapfile -t main_workers < <(workers_of main)
[ "${#main_workers[@]}" = 2 ] || die "expected 2 php-fpm workers in pool main, found ${#main_workers[@]}"
# One wrk measurement of an endpoint of pool main, appended as a record of SECTION: wrk's numbers plus
# the FPM workers' and Redis's CPU per request. Any failed request aborts the run.
measure_endpoint() { # section run endpoint wrk-command...
  local section=$1 run=$2 e=$3 url="$base/main/$3.php" w0 w1 r0 r1 out json bad reqs worker_us redis_us
  shift 3
  [ "$wrk_warm" -gt 0 ] && "$@" -c"$wrk_conn" -d"${wrk_warm}s" "$url" >/dev/null
  w0=$(cpu_ticks "${main_workers[@]}") r0=$(cpu_ticks "$redis_pid")
  out=$("$@" -c"$wrk_conn" -d"${wrk_d}s" --latency -s bench/wrk/report.lua "$url") || die "wrk failed on $e ($section)"
  w1=$(cpu_ticks "${main_workers[@]}") r1=$(cpu_ticks "$redis_pid")
  json=$(printf '%s\n' "$out" | grep '^{"requests"' | tail -1)
  [ -n "$json" ] || { printf '%s\n' "$out" >&2; die "wrk printed no result for $e ($section)"; }
  bad=$(printf '%s' "$json" | "$php" -r '$j = json_decode(stream_get_contents(STDIN), true); echo $j["non2xx"] + $j["err_connect"] + $j["err_read"] + $j["err_write"] + $j["err_timeout"];')
  [ "$bad" = 0 ] || { printf '%s\n' "$out" >&2; tail -5 "$work/fpm-bench.log" >&2; die "$e: $bad failed requests under wrk ($section)"; }
  reqs=$(printf '%s' "$json" | sed -E 's/.*"requests":([0-9]+).*/\1/')
  worker_us=$(awk -v a="$w0" -v b="$w1" -v n="$reqs" -v t="$tck" 'BEGIN{printf "%.1f", (b - a) * 1e6 / t / n}')
  redis_us=$(awk -v a="$r0" -v b="$r1" -v n="$reqs" -v t="$tck" 'BEGIN{printf "%.1f", (b - a) * 1e6 / t / n}')
  printf '{"section":"%s","run":%d,"endpoint":"%s","connections":%d,"worker_cpu_us":%s,"redis_cpu_us":%s,%s\n' \
    "$section" "$run" "$e" "$wrk_conn" "$worker_us" "$redis_us" "${json#\{}" >>"$raw"
}
t0=$SECONDS
for ((run = 1; run <= fpm_runs; run++)); do
  say "4. php-fpm per request (wrk -t2 -c$wrk_conn -d${wrk_d}s), run $run/$fpm_runs"
  for e in $(rotate "$run" "${endpoints[@]}"); do
    measure_endpoint fpm "$run" "$e" wrk -t2
  done
done
say "php-fpm took $((SECONDS - t0)) s"

# ---- 4b. TLS against plain TCP with Redis on a core of its own ----------------------------------------------
# Above, the FPM workers, nginx and wrk float over every core, Redis's share included: Redis's own TLS
# work then takes req/s away from PHP. In production Redis runs elsewhere. Here the PHP side (FPM
# workers and nginx) gets CPU 0 to itself, and Redis and the load generator share the last CPU, which
# they do not saturate: req/s then measures what TLS costs the PHP side. More runs than section 4:
# one core serving everything is sensitive to any disturbance.
split_runs=$((quick == 1 ? 1 : fpm_runs + 2))
if [ "${#srv_pin[@]}" -gt 0 ]; then
  split_endpoints=(noop qrpush_client qrpush_client_tls)
  nginx_pids="$nginx_master $(pgrep -P "$nginx_master" || true)"
  for p in "${main_workers[@]}" $nginx_pids; do taskset -a -p -c 0 "$p" >/dev/null; done
  for ((run = 1; run <= split_runs; run++)); do
    say "4b. TLS vs TCP per request, PHP alone on CPU 0, run $run/$split_runs"
    for e in $(rotate "$run" "${split_endpoints[@]}"); do
      measure_endpoint fpm_split "$run" "$e" "${srv_pin[@]}" wrk -t1
    done
  done
  for p in "${main_workers[@]}" $nginx_pids; do taskset -a -p -c "0-$((ncpu - 1))" "$p" >/dev/null; done
fi

# ---- 5. cold worker ------------------------------------------------------------------------------------------
say "5. cold worker: first publish in $cold_n fresh processes per contender, with and without a password"
for auth in 1 0; do
  if [ "$auth" = 1 ]; then port=$redis_port pw=$pass url=$qr_url; else port=$open_port pw= url="redis://127.0.0.1:$open_port"; fi
  for ((i = 1; i <= cold_n; i++)); do
    for who in $(rotate "$i" qrpush phpredis predis); do
      record cold "$i" auth="$auth" -- env BENCH_REDIS_PORT="$port" BENCH_REDIS_PASS="$pw" \
        "${cli_pin[@]}" "$php" "${qr_ini[@]}" -d "qrpush.url=$url" bench/php/cold.php "$who"
    done
    # QrPush over TLS to the same server (with its password): connect + TLS handshake + AUTH.
    if [ "$auth" = 1 ]; then
      record cold "$i" auth=1 -- env BENCH_LABEL=qrpush_tls \
        "${cli_pin[@]}" "$php" "${qr_ini[@]}" "${qr_tls[@]}" bench/php/cold.php qrpush
    fi
  done
done

# ---- 6. memory -------------------------------------------------------------------------------------------------
say "6. memory: FPM worker RSS with and without QrPush, and over $((mem_step * mem_steps)) publishes"
warm_requests() { # url count
  local i
  if [ "$quick" = 1 ]; then for ((i = 0; i < 4; i++)); do "$php" bench/php/http.php "$1" >/dev/null; done
  else wrk -t1 -c2 -d1s "$1" >/dev/null; fi
}
mem_record() { # kind pool
  local p
  for p in $(workers_of "$2"); do
    printf '{"section":"mem","run":1,"kind":"%s","pid":%d,%s\n' "$1" "$p" \
      "$("$php" -r 'require "bench/php/common.php"; echo substr(json_encode(bench_self_memory((int) $argv[1])), 1);' "$p")" >>"$raw"
  done
}
# Both pools get the same warm-up rounds; then "ext" publishes for one more round.
for pool in noext ext; do
  warm_requests "$base/$pool/noop.php"
  warm_requests "$base/$pool/noop.php"
done
mem_record noext noext
mem_record ext_loaded ext
warm_requests "$base/ext/qrpush.php"
mem_record ext_used ext
for c in qrpush phpredis; do
  pool=memq; [ "$c" = phpredis ] && pool=memr
  for ((i = 0; i <= mem_steps; i++)); do
    n=$mem_step; [ "$i" = 0 ] && n=1
    body=$("$php" bench/php/http.php "$base/$pool/mem.php?c=$c&n=$n") || die "memory curve ($c) failed"
    printf '{"section":"mem_curve","run":1,"contender":"%s","publishes":%d,%s\n' "$c" $((i == 0 ? 1 : i * mem_step)) "${body#\{}" >>"$raw"
  done
done
say "measurements done"
