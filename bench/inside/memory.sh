# shellcheck shell=bash
# bench/inside.sh, section 6: php-fpm worker memory with and without QrPush, and over many
# publishes. Sourced.
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
