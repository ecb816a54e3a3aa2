# Shared shell helpers for QrPush's scripts: where the cached toolchain lives and how to run a
# command against it. Sourced, never executed.
#
# The expensive parts (a Debian trixie chroot with PHP 8.4 NTS, php-fpm, PHPUnit, redis, nginx, and a
# source-built PHP 8.4 ZTS inside it) live outside the repository, under $QRPUSH_CACHE, and are
# rebuilt by scripts/provision when missing. A user with their own PHP 8.4 and redis-server can skip
# all of it: set QRPUSH_NATIVE=1 (and optionally PHP, PHP_CONFIG, PHP_ZTS, PHPUNIT, REDIS_SERVER).

QRPUSH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QRPUSH_CACHE=${QRPUSH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qrpush}
QRPUSH_CHROOT=${QRPUSH_CHROOT:-$QRPUSH_CACHE/trixie}
# Inside the chroot: where the ZTS build is installed.
QRPUSH_ZTS_PREFIX=/opt/php-zts

log() { printf '\033[1m[qrpush]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[qrpush] error:\033[0m %s\n' "$*" >&2; exit 1; }

# True when commands run natively (a user's own PHP/redis) instead of in the cached chroot.
qr_native() { [ "${QRPUSH_NATIVE:-0}" = 1 ]; }

# Runs "$@" (a shell command line) inside the chroot, in a private mount namespace so every mount
# disappears with the process: nothing to clean up, nothing left behind, safe to run concurrently.
# The project directory and the Rust toolchain are bind-mounted at the same paths as on the host.
qr_run() {
  if qr_native; then
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
      QRPUSH_CACHE="$cache" $QRPUSH_PASS_ENV \
      bash -c "cd \"$here\" && $*"
  ' qr_run "$root" "$here" "$cargo_home" "$rustup_home" "$QRPUSH_ROOT" "$QRPUSH_CACHE" "$@"
}
