# shellcheck shell=bash
# bench/inside.sh: the php-fpm masters and nginx that sections 4 to 6 measure through. Sourced.
# Master "bench" (QrPush loaded): pool main (the per-request benchmark, 2 workers) and pools
# memq/memr (the 1M-publish curves, 1 worker each). Masters "ext" and "noext": one pool of 2 workers
# each, identical but for QrPush (the memory comparison; shared pages are split the same way).
# Debian's php-fpm php.ini and conf.d (opcache, phpredis, zmq) everywhere.
fpm_pool() { # name workers
  qr_fpm_pool "$1" "$work/fpm-$1.sock" "$2"
  printf 'listen.mode = 0666\nclear_env = yes\nenv[BENCH_REDIS_PORT] = %s\nenv[BENCH_REDIS_PASS] = %s\nenv[BENCH_ZMQ_PORT] = %s\nenv[BENCH_EXT] = %s\n' \
    "$redis_port" "$pass" "$zmq_port" "$ext"
  printf 'env[BENCH_TLS_PORT] = %s\nenv[BENCH_TLS_CA] = %s\n' "$tls_port" "$work/tls/ca.pem"
  printf 'php_admin_value[max_execution_time] = 0\nphp_admin_value[memory_limit] = 256M\n\n'
}
start_fpm() { # master-name ext(0|1) pool:workers...
  local name=$1 with_ext=$2 conf="$work/fpm-$1.conf" args=() p
  shift 2
  qr_fpm_global "$work" "fpm-$name" >"$conf"
  for p in "$@"; do fpm_pool "${p%%:*}" "${p##*:}" >>"$conf"; done
  [ "$with_ext" = 1 ] && args=("${qr_ini[@]}" -d "qrpush.url=$qr_url")
  qr_fpm_start "$conf" "$work/fpm-$name.out" "$fpm_bin" "${args[@]}"
  pids+=("$qr_fpm_pid")
  fpm_master[$name]=$qr_fpm_pid
}
declare -A fpm_master

start_fpm bench 1 main:2 memq:1 memr:1
start_fpm ext 1 ext:2
start_fpm noext 0 noext:2

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
