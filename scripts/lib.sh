# Shared shell helpers for QrPush's scripts: where the cached toolchain lives, how to run a command
# against it, and the process harness every script uses (PHP paths per flavour, free ports, a
# private redis-server, stopping by pid). Sourced, never executed; works on the host and inside the
# chroot alike (the project is mounted at the same path there).
#
# The expensive parts (a Debian trixie chroot with PHP 8.4 NTS, php-fpm, PHPUnit, redis, nginx, and a
# source-built PHP 8.4 ZTS inside it) live outside the repository, under $QRPUSH_CACHE, and are
# rebuilt by scripts/provision when missing. A user with their own PHP 8.4 and redis-server can skip
# all of it: set QRPUSH_NATIVE=1 and name the programs (see qr_php_path).
#
# Ports: no server of ours ever takes a port of QRPUSH_RESERVED_PORTS (space- or comma-separated;
# default "2024 6379": 2024 is taken on the project's machines, 6379 is a developer's own Redis).
# The PHP and Rust test harnesses read the same variable.

QRPUSH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QRPUSH_CACHE=${QRPUSH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qrpush}
QRPUSH_CHROOT=${QRPUSH_CHROOT:-$QRPUSH_CACHE/trixie}
# Inside the chroot: where the ZTS build is installed.
QRPUSH_ZTS_PREFIX=/opt/php-zts
QRPUSH_RESERVED_PORTS=${QRPUSH_RESERVED_PORTS:-2024 6379}

log() { printf '\033[1m[qrpush]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[qrpush] error:\033[0m %s\n' "$*" >&2; exit 1; }

# True when commands run natively (a user's own PHP/redis) instead of in the cached chroot.
qr_native() { [ "${QRPUSH_NATIVE:-0}" = 1 ]; }

# True inside the chroot (qr_run sets QRPUSH_IN_CHROOT=1 there).
qr_in_chroot() { [ "${QRPUSH_IN_CHROOT:-0}" = 1 ]; }

# Runs "$@" (a shell command line) inside the chroot, in a private mount namespace so every mount
# disappears with the process: nothing to clean up, nothing left behind, safe to run concurrently.
# The project directory and the Rust toolchain are bind-mounted at the same paths as on the host.
# Natively, or when already inside the chroot, it runs the command directly.
qr_run() {
  if qr_native || qr_in_chroot; then
    (cd "$PWD" && bash -c "$*")
    return
  fi
  local root=$QRPUSH_CHROOT here=$PWD
  local cargo_home=${CARGO_HOME:-$HOME/.cargo} rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
  unshare --mount --propagation private -- bash -c '
    set -e
    root=$1 here=$2 cargo_home=$3 rustup_home=$4 project=$5 cache=$6; shift 6
    mount -t proc proc "$root/proc"
    mount -t sysfs sys "$root/sys" 2>/dev/null || true
    mount --rbind /dev "$root/dev"
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts" 2>/dev/null || true
    mount -t tmpfs -o size=2g tmpfs "$root/dev/shm" 2>/dev/null || true
    for d in "$cargo_home" "$rustup_home" "$project" "$cache/work"; do
      mkdir -p "$d" "$root$d"; mount --bind "$d" "$root$d"
    done
    cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    exec chroot "$root" /usr/bin/env -i HOME="$HOME" TERM="${TERM:-dumb}" CI="${CI:-}" \
      PATH="$cargo_home/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
      CARGO_HOME="$cargo_home" RUSTUP_HOME="$rustup_home" QRPUSH_IN_CHROOT=1 \
      QRPUSH_CACHE="$cache" QRPUSH_RESERVED_PORTS="$QRPUSH_RESERVED_PORTS" $QRPUSH_PASS_ENV \
      bash -c "cd \"$here\" && $*"
  ' qr_run "$root" "$here" "$cargo_home" "$rustup_home" "$QRPUSH_ROOT" "$QRPUSH_CACHE" "$@"
}

# The named variables that are set, as shell assignments (quoted) to put in front of a qr_run
# command line: `qr_run "$(qr_env_prefix A B)command"` carries A and B into the chroot.
qr_env_prefix() {
  local name out=
  for name in "$@"; do
    [ -n "${!name+set}" ] && out+="$name=$(printf %q "${!name}") "
  done
  printf '%s' "$out"
}

# Makes the calling script run inside the chroot: on the host it runs SCRIPT (a path relative to the
# repository) with ARGS again there, carrying the variables named in QRPUSH_CARRY_ENV, and exits with
# its status; natively, or already inside, it returns at once.
#   Usage: QRPUSH_CARRY_ENV="NAME ..." qr_enter_chroot tests/leaks/run "$@"
qr_enter_chroot() { # script [args...]
  { qr_native || qr_in_chroot; } && return 0
  local script=$QRPUSH_ROOT/$1 args=
  shift
  [ $# -gt 0 ] && args=$(printf '%q ' "$@")
  # shellcheck disable=SC2086
  qr_run "$(qr_env_prefix ${QRPUSH_CARRY_ENV:-})bash $(printf %q "$script") $args"
  exit
}

# ---- PHP per flavour --------------------------------------------------------------------------------

# The path of TOOL (php, php-fpm, phpize or php-config) for FLAVOUR (nts or zts). In the chroot: NTS
# is Debian's PHP 8.4, ZTS the source build in $QRPUSH_ZTS_PREFIX. Natively (QRPUSH_NATIVE=1): the
# variables PHP, PHP_FPM, PHPIZE, PHP_CONFIG (default: the name on PATH) for NTS, and PHP_ZTS,
# PHP_FPM_ZTS, PHPIZE_ZTS, PHP_CONFIG_ZTS for ZTS; a ZTS tool nobody named makes it return 1, after
# saying which variable is missing (the caller skips ZTS or fails, as it needs).
qr_php_path() { # flavour tool
  local flavour=$1 tool=$2 var path
  case $flavour/$tool in
    nts/php|nts/php-fpm|nts/phpize|nts/php-config|zts/php|zts/php-fpm|zts/phpize|zts/php-config) ;;
    *) die "qr_php_path: unknown flavour or tool '$flavour' '$tool'" ;;
  esac
  if qr_native; then
    var=${tool^^}
    var=${var//-/_}
    [ "$flavour" = zts ] && var+=_ZTS
    path=${!var:-}
    [ "$flavour" = nts ] && path=${path:-$tool}
    if [ -z "$path" ]; then
      log "QRPUSH_NATIVE=1 and no $var given: no ${flavour^^} $tool"
      return 1
    fi
  elif [ "$flavour" = nts ]; then
    case $tool in
      php-fpm) path=/usr/sbin/php-fpm8.4 ;;
      *) path=/usr/bin/${tool}8.4 ;;
    esac
  else
    case $tool in
      php-fpm) path=$QRPUSH_ZTS_PREFIX/sbin/php-fpm ;;
      *) path=$QRPUSH_ZTS_PREFIX/bin/$tool ;;
    esac
  fi
  printf '%s\n' "$path"
}

# ---- ports ------------------------------------------------------------------------------------------

# True when PORT is not one of QRPUSH_RESERVED_PORTS.
qr_port_allowed() { # port
  local reserved
  for reserved in ${QRPUSH_RESERVED_PORTS//,/ }; do
    [ "$1" = "$reserved" ] && return 1
  done
  return 0
}

# Fails (naming it) when a fixed port given by the user is reserved.
qr_check_port() { # port what
  qr_port_allowed "$1" || die "$2: port $1 is reserved (QRPUSH_RESERVED_PORTS=$QRPUSH_RESERVED_PORTS)"
}

# N distinct free loopback ports (default 1), one a line: the kernel's choice for ephemeral binds,
# all held until every one is chosen (so they differ), never a reserved one. Python on the host,
# PHP inside the chroot (whichever is there).
qr_free_ports() { # [n]
  local n=${1:-1} out php
  if command -v python3 >/dev/null 2>&1; then
    out=$(python3 - "$n" "$QRPUSH_RESERVED_PORTS" <<'PY'
import socket, sys
n, reserved = int(sys.argv[1]), set(sys.argv[2].replace(",", " ").split())
held, ports = [], []
while len(ports) < n and len(held) < n + 50:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
    port = s.getsockname()[1]
    if str(port) not in reserved:
        ports.append(port)
print("\n".join(map(str, ports)))
PY
)
  else
    php=$(command -v php8.4 || command -v php) || die "qr_free_ports: neither python3 nor php is installed"
    out=$("$php" -n -r '
      [$n, $reserved] = [(int) $argv[1], preg_split("/[\s,]+/", $argv[2], -1, PREG_SPLIT_NO_EMPTY)];
      $held = $ports = [];
      while (count($ports) < $n && count($held) < $n + 50) {
          $held[] = $s = stream_socket_server("tcp://127.0.0.1:0");
          $name = stream_socket_get_name($s, false);
          $port = substr($name, strrpos($name, ":") + 1);
          if (!in_array($port, $reserved, true)) { $ports[] = $port; }
      }
      echo implode("\n", $ports), "\n";' "$n" "$QRPUSH_RESERVED_PORTS")
  fi
  [ "$(printf '%s\n' "$out" | grep -c .)" = "$n" ] || die "qr_free_ports: could not find $n free loopback ports"
  printf '%s\n' "$out"
}

qr_free_port() { qr_free_ports 1; }

# ---- processes --------------------------------------------------------------------------------------

# Runs COMMAND... every 50 ms until it succeeds (output discarded) or SECONDS pass; returns 1 then.
qr_wait_for() { # seconds command...
  local seconds=$1 _
  shift
  for _ in $(seq $((seconds * 20))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  return 1
}

# Stops a process this script started, by its pid: SIGTERM (SIGCONT first, so a stopped one can
# act on it), up to GRACE seconds (default 5) for it to exit, then SIGKILL. Silent when it is gone.
qr_stop_pid() { # pid [grace]
  local pid=$1 grace=${2:-5} _
  [ -n "$pid" ] || return 0
  kill -CONT "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq $((grace * 20))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# The safety net behind qr_stop_pid: stops every process still running with its working directory
# under DIR (a run's private directory; the chroot's view of it counts too). A server a test lost
# track of (a run killed midway, a child that outlived its parent) would otherwise keep its port and
# every file descriptor it inherited, such as a lock the whole machine waits on.
qr_stop_strays() { # dir
  local dir pid cwd
  dir=$(realpath -m "$1")
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [ "$pid" = $$ ] && continue
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || continue
    cwd=${cwd% (deleted)}
    case $cwd in
      "$dir"|"$dir"/*|"$QRPUSH_CHROOT$dir"|"$QRPUSH_CHROOT$dir"/*)
        log "stopping a process left behind in $dir: $pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)"
        qr_stop_pid "$pid" 2 ;;
    esac
  done
}

# Starts a private redis-server on 127.0.0.1:PORT as a background child of this shell: no
# persistence (an option given later may turn it on), working directory and log (redis-PORT.log) in
# DIR, plus any further redis-server options (--requirepass, --tls-port ...). Runs it behind the
# words of the array QRPUSH_REDIS_PREFIX when set (e.g. taskset). Waits until it answers (any reply,
# NOAUTH included); sets qr_redis_pid. Dies, showing its log, when it does not come up.
qr_redis_start() { # port dir [redis-server options...]
  local port=$1 dir=$2 log
  shift 2
  qr_check_port "$port" redis-server
  mkdir -p "$dir"
  log=$dir/redis-$port.log
  "${QRPUSH_REDIS_PREFIX[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$dir" --logfile "$log" "$@" </dev/null >>"$log.out" 2>&1 &
  qr_redis_pid=$!
  local _
  for _ in $(seq 200); do
    kill -0 "$qr_redis_pid" 2>/dev/null || break
    redis-cli -p "$port" ping 2>&1 | grep -qE '^(PONG|NOAUTH)' && return 0
    sleep 0.05
  done
  qr_stop_pid "$qr_redis_pid" 1
  die "redis-server on 127.0.0.1:$port did not start: $(tail -5 "$log" "$log.out" 2>/dev/null)"
}

# ---- php-fpm -----------------------------------------------------------------------------------------
# A config is written as `qr_fpm_global` + one `qr_fpm_pool` per pool, each followed by the caller's
# own lines (php_admin_value[...], env[...]); qr_fpm_start runs it.

# The [global] section: foreground, error log DIR/NAME.log, pid file DIR/NAME.pid.
qr_fpm_global() { # dir name
  printf '[global]\nerror_log = %s/%s.log\ndaemonize = no\npid = %s/%s.pid\n\n' "$1" "$2" "$1" "$2"
}

# A pool: NAME, listening on LISTEN (host:port or a socket path), WORKERS static workers; run as
# root when we are root (php-fpm refuses root otherwise).
qr_fpm_pool() { # name listen workers
  printf '[%s]\nlisten = %s\npm = static\npm.max_children = %d\n' "$1" "$2" "$3"
  [ "$(id -u)" = 0 ] && printf 'user = root\ngroup = root\n'
  return 0
}

# Starts FPM (a php-fpm binary) in the foreground as a background child with CONF and any further
# options (-n, -d extension=...), its output appended to OUT; waits (up to 10 s) until the error log
# named in CONF says it is ready. Sets qr_fpm_pid; dies, showing the logs, when it does not start.
qr_fpm_start() { # conf out fpm [php-fpm options...]
  local conf=$1 out=$2 fpm=$3 log root=() _
  shift 3
  log=$(sed -n 's/^error_log = //p' "$conf" | head -1)
  [ -n "$log" ] || die "qr_fpm_start: $conf names no error_log"
  [ "$(id -u)" = 0 ] && root=(-R)
  "$fpm" -F -y "$conf" "${root[@]}" "$@" >>"$out" 2>&1 </dev/null &
  qr_fpm_pid=$!
  for _ in $(seq 200); do
    grep -q 'ready to handle connections' "$log" 2>/dev/null && return 0
    kill -0 "$qr_fpm_pid" 2>/dev/null || break
    sleep 0.05
  done
  qr_stop_pid "$qr_fpm_pid" 2
  die "php-fpm ($fpm, $conf) did not start: $(tail -5 "$log" "$out" 2>/dev/null)"
}

# ---- the whole stack (php/stack) and the browser side ------------------------------------------------

# Starts php/stack (redis-server, php-fpm FPM with EXT, the gateways GATEWAY, nginx) in the
# background, in the chroot, quiet, with RUN as its run directory (stack.log there) and SETTINGS
# (QRPUSH_DEMO_* assignments) in front; waits until it is ready. Stop it with qr_stack_stop RUN.
qr_stack_start() { # run settings fpm ext gateway
  local run=$1 settings=$2 _
  mkdir -p "$run"
  qr_run "$settings QRPUSH_DEMO_QUIET=1 QRPUSH_DEMO_RUN_DIR='$run' bash php/stack '$3' '$4' '$5'" \
    >"$run/stack.log" 2>&1 &
  qr_stack_runner=$!
  for _ in $(seq 300); do
    [ -f "$run/ready" ] && return 0
    kill -0 "$qr_stack_runner" 2>/dev/null || break
    sleep 0.1
  done
  cat "$run/stack.log" >&2
  die "the stack (php/stack) did not start"
}

# Stops what qr_stack_start started: php/stack's own pid (it stops its servers by pid), then waits
# for the qr_run around it.
qr_stack_stop() { # run
  if [ -f "$1/stack.pid" ]; then kill -TERM "$(cat "$1/stack.pid")" 2>/dev/null || true; fi
  if [ -n "${qr_stack_runner:-}" ]; then wait "$qr_stack_runner" 2>/dev/null || true; fi
  qr_stack_runner=
}

# The npm packages of a Node project of the repository (a folder with package.json and
# package-lock.json; default tests/e2e: playwright-core for the browser test and the gateway
# benchmark): `npm ci` into $QRPUSH_CACHE/node (tests/e2e) or $QRPUSH_CACHE/node-<folder with / as ->-
# <lock file hash> (others), outside the repository, again only when the lock file changed. Naming
# the others by their lock file lets checkouts with different lock files (branches, worktrees)
# share the cache without one replacing the packages another is running. Prints the node_modules
# directory.
qr_node_modules() { # [project folder, relative to the repository]
  local project=${1:-tests/e2e} dir stamp
  command -v node >/dev/null 2>&1 || die "node is missing on the host"
  stamp=$(sha256sum "$QRPUSH_ROOT/$project/package-lock.json" | cut -c1-16)
  dir=$QRPUSH_CACHE/node
  [ "$project" = tests/e2e ] || dir=$QRPUSH_CACHE/node-${project//\//-}-$stamp
  if [ "$(cat "$dir/.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "installing the npm packages of $project into $dir (npm ci)"
    rm -rf "$dir" && mkdir -p "$dir"
    cp "$QRPUSH_ROOT/$project/package.json" "$QRPUSH_ROOT/$project/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci in $dir failed"
    echo "$stamp" >"$dir/.stamp"
  fi
  printf '%s\n' "$dir/node_modules"
}
