# shellcheck shell=bash
# bench/inside.sh, section 7: Redis Cluster beside one Redis. Starts a Cluster of 3 primaries (no
# replicas: a benchmark measures the publish path, not failover) on free loopback ports, pinned like
# the single Redis, with the same password; measures single publishes (100 B and 4 KB) and batches
# of 100 against the single Redis and the Cluster (QrPush sharded and global, phpredis RedisCluster,
# predis's cluster client), every contender once per run, on the same 12 channels, 4 per shard;
# then stops the Cluster. Sourced.
t0=$SECONDS
cl_ports=($(qr_free_ports 6))
cl_nodes=("${cl_ports[@]:0:3}") cl_bus=("${cl_ports[@]:3:3}")
say "7. Redis Cluster: 3 primaries on 127.0.0.1:${cl_nodes[*]} (bus ports ${cl_bus[*]})"
cl_cli() { redis-cli -p "$1" -a "$pass" --no-auth-warning "${@:2}"; }
QRPUSH_REDIS_PREFIX=("${srv_pin[@]}")
cl_pids=()
for i in 0 1 2; do
  qr_redis_start "${cl_nodes[i]}" "$work/cluster" --requirepass "$pass" --masterauth "$pass" \
    --cluster-enabled yes --cluster-port "${cl_bus[i]}" --cluster-config-file "nodes-${cl_nodes[i]}.conf"
  pids+=("$qr_redis_pid")
  cl_pids+=("$qr_redis_pid")
done
redis-cli -a "$pass" --no-auth-warning --cluster create "${cl_nodes[@]/#/127.0.0.1:}" --cluster-yes \
  >"$work/cluster-create.log" 2>&1 || die "redis-cli --cluster create failed: $(tail -5 "$work/cluster-create.log")"
cl_settled() {
  local p
  for p in "${cl_nodes[@]}"; do
    cl_cli "$p" cluster info | grep -q '^cluster_state:ok' || return 1
    cl_cli "$p" cluster info | grep -q '^cluster_known_nodes:3' || return 1
  done
  redis-cli -a "$pass" --no-auth-warning --cluster check "127.0.0.1:${cl_nodes[0]}" | grep -q 'All nodes agree'
}
qr_wait_for 30 cl_settled || die "the Cluster did not reach cluster_state:ok on all 3 nodes within 30 s"

# 12 channels, 4 on each primary, taken in turn (shard 1, 2, 3, 1, …), so any 3 consecutive
# publishes touch every shard and a batch of 100 splits 34/33/33.
declare -A cl_by_port=()
# CLUSTER NODES: "id host:port@bus flags master epoch… connected first-last …" per node.
cl_nodes_text=$(cl_cli "${cl_nodes[0]}" cluster nodes)
done_count=0
for ((i = 0; i < 500 && done_count < 3; i++)); do
  ch=bench:events:$i
  slot=$(cl_cli "${cl_nodes[0]}" cluster keyslot "$ch")
  owner=$(printf '%s\n' "$cl_nodes_text" | awk -v s="$slot" '$3 ~ /master/ {
    for (f = 9; f <= NF; f++) { split($f, r, "-"); if (r[2] == "") r[2] = r[1]
      if (s >= r[1] + 0 && s <= r[2] + 0) { split($2, a, "[:@]"); print a[2]; exit } } }')
  [ -n "$owner" ] || die "slot $slot of $ch has no owner in CLUSTER NODES"
  set -- ${cl_by_port[$owner]:-}
  [ $# -lt 4 ] && cl_by_port[$owner]="${cl_by_port[$owner]:-} $ch"
  done_count=0
  for p in "${!cl_by_port[@]}"; do set -- ${cl_by_port[$p]}; [ $# -ge 4 ] && done_count=$((done_count + 1)); done
done
[ "$done_count" = 3 ] || die "could not find 4 channels on each of the 3 primaries"
cl_lists=()
for p in "${cl_nodes[@]}"; do cl_lists+=("${cl_by_port[$p]}"); done
read -ra cl_a <<<"${cl_lists[0]}"; read -ra cl_b <<<"${cl_lists[1]}"; read -ra cl_c <<<"${cl_lists[2]}"
channels=
for j in 0 1 2 3; do channels+="${cl_a[j]},${cl_b[j]},${cl_c[j]},"; done
export BENCH_CHANNELS=${channels%,}
export BENCH_CLUSTER_SEEDS=$(printf '127.0.0.1:%s,' "${cl_nodes[@]}" | sed 's/,$//')
say "channels (shard by shard, in turn): $BENCH_CHANNELS"

cl_url="redis-cluster://:$pass@$BENCH_CLUSTER_SEEDS"
# Every contender: a name for the record, then the command line (the same PHP settings as above).
cl_run() { # section run key=value... -- label cluster(0|sharded|global) args...
  local section=$1 run=$2 kv=()
  shift 2
  while [ "$1" != -- ]; do kv+=("$1"); shift; done
  shift
  local label=$1 mode=$2
  shift 2
  local cmd=("${php_cli[@]}")
  [ "$mode" != 0 ] && cmd+=(-d "qrpush.url=$cl_url" -d "qrpush.cluster_publish=$mode")
  record "$section" "$run" "${kv[@]}" -- env BENCH_LABEL="$label" "${cmd[@]}" bench/php/cli.php "$@"
}
for ((run = 1; run <= runs; run++)); do
  say "7. Cluster beside one Redis, run $run/$runs"
  for size in 100 4096; do
    n=$n_small; [ "$size" = 4096 ] && n=$n_medium
    for who in $(rotate "$run" solo sharded global phpredis_cl phpredis_cl_raw predis_cl phpredis_solo); do
      case $who in
        solo) cl_run cluster "$run" size="$size" -- qrpush 0 loop qrpush_spread "$size" "$n" ;;
        sharded | global) cl_run cluster "$run" size="$size" -- "qrpush_$who" "$who" loop qrpush_spread "$size" "$n" ;;
        phpredis_solo) cl_run cluster "$run" size="$size" -- phpredis 0 loop phpredis_spread "$size" "$n" ;;
        *) cl_run cluster "$run" size="$size" -- "$who" 0 loop "$who" "$size" "$n" ;;
      esac
    done
  done
  for who in $(rotate "$run" solo sharded global phpredis_cl predis_cl phpredis_solo); do
    case $who in
      solo) cl_run cluster "$run" batch=100 -- qrpush_many 0 batch qrpush_many_spread 100 "$n_batch" ;;
      sharded | global) cl_run cluster "$run" batch=100 -- "qrpush_many_$who" "$who" batch qrpush_many_spread 100 "$n_batch" ;;
      phpredis_solo) cl_run cluster "$run" batch=100 -- phpredis_pipeline 0 batch phpredis_pipeline_spread 100 "$n_batch" ;;
      predis_cl) cl_run cluster "$run" batch=100 -- predis_cl_batch 0 batch predis_cl_batch 100 "$n_batch" ;;
      # RedisCluster has no pipeline: a loop of 100 round trips, over fewer messages (n_loop).
      phpredis_cl) cl_run cluster "$run" batch=100 -- phpredis_cl_batch 0 batch phpredis_cl_batch 100 "$n_loop" ;;
    esac
  done
done
# Stopped now, and out of `pids`: the exit trap must not signal a pid the system may reuse.
for pid in "${cl_pids[@]}"; do qr_stop_pid "$pid"; done
kept=()
for pid in "${pids[@]}"; do [[ " ${cl_pids[*]} " == *" $pid "* ]] || kept+=("$pid"); done
pids=("${kept[@]}")
say "Cluster section took $((SECONDS - t0)) s"
