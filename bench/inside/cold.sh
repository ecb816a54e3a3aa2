# shellcheck shell=bash
# bench/inside.sh, section 5: the first publish of a fresh process (connect + AUTH + PUBLISH), with
# and without a password, and over TLS. Sourced.
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
