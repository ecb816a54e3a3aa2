# shellcheck shell=bash
# bench/inside.sh, sections 2 and 3: batches (publishMany, pipelines, a loop of singles) and array
# payloads (the extension's JSON against json_encode). Sourced.
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
