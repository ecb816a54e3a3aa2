# shellcheck shell=bash
# bench/inside.sh, servers: a throw-away TLS CA, Redis with a password (and TLS) and without, the ZMQ
# PULL drainer, the PHP CLI settings every contender runs with; then the machine facts and the
# run's settings as the first records. Sourced; the servers' pids go to `pids` (stopped on exit).
pass=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
ports=$(qr_free_ports 5)
read -r redis_port tls_port open_port zmq_port http_port <<<"$(echo $ports)"
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

say "redis-server with a password on 127.0.0.1:$redis_port (TLS on :$tls_port), without on :$open_port; ZMQ PULL on :$zmq_port"
QRPUSH_REDIS_PREFIX=("${srv_pin[@]}")
qr_redis_start "$redis_port" "$work" --requirepass "$pass" --tls-port "$tls_port" --tls-cert-file "$work/tls/server.pem" \
  --tls-key-file "$work/tls/server.key" --tls-ca-cert-file "$work/tls/ca.pem" --tls-auth-clients no
redis_pid=$qr_redis_pid
pids+=("$redis_pid")
qr_redis_start "$open_port" "$work"
pids+=("$qr_redis_pid")
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
