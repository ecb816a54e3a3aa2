# shellcheck shell=bash
# bench/inside.sh, sections 4 and 4b: per request under php-fpm behind nginx, driven by wrk; 4b
# again for TLS against plain TCP with Redis on a core of its own. Sourced.
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
