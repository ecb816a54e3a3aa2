# shellcheck shell=bash
# bench/inside.sh, section 1: the CLI loop, single publishes of 100 B and 4 KB, every contender
# once per run, plus redis-benchmark's view of the same server. Sourced.
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
