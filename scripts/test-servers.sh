# The Linux side of QRPUSH_TEST_SERVERS for a PHPUnit run whose PHP cannot start the chroot's
# redis-server itself (the Windows php.exe under Wine, the host's PHP 8.2): tests/php/server-control.php
# runs in the chroot and starts, freezes and stops redis-server on the suite's request. Sourced
# (after lib.sh), never executed.
#   start_test_servers DIR   DIR: shared with the chroot (under $QRPUSH_CACHE/work); sets
#                            TEST_SERVERS_ADDR, the value for QRPUSH_TEST_SERVERS
#   stop_test_servers        asks it to quit (it stops every server it started) and waits

TEST_SERVERS_PID=
TEST_SERVERS_DIR=
TEST_SERVERS_ADDR=
start_test_servers() {
  TEST_SERVERS_DIR=$1
  rm -f "$TEST_SERVERS_DIR/control.addr"
  # At most 15 min without a request, so a run that died cannot leave it behind for long.
  qr_run "exec php8.4 tests/php/server-control.php $TEST_SERVERS_DIR/control.addr 900" 2>"$TEST_SERVERS_DIR/control.log" &
  TEST_SERVERS_PID=$!
  local _
  for _ in $(seq 200); do
    [ -s "$TEST_SERVERS_DIR/control.addr" ] && { TEST_SERVERS_ADDR=$(cat "$TEST_SERVERS_DIR/control.addr"); return 0; }
    kill -0 "$TEST_SERVERS_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "the server control (tests/php/server-control.php) did not start: $(cat "$TEST_SERVERS_DIR/control.log")" >&2
  return 1
}

stop_test_servers() {
  [ -n "$TEST_SERVERS_PID" ] || return 0
  if [ -s "$TEST_SERVERS_DIR/control.addr" ]; then
    python3 - "$(cat "$TEST_SERVERS_DIR/control.addr")" <<'PY' || echo "could not ask the server control to quit" >&2
import socket, sys
host, port = sys.argv[1].removeprefix("tcp://").rsplit(":", 1)
with socket.create_connection((host, int(port)), timeout=5) as s:
    s.sendall(b'{"op":"quit"}\n')
    s.recv(100)
PY
  fi
  wait "$TEST_SERVERS_PID" 2>/dev/null || true
  TEST_SERVERS_PID=
}
