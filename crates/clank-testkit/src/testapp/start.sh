# Clank's runtime test app: a tiny HTTP server made of busybox `nc` and a shell handler.
# Run as `/bin/busybox sh start.sh` (any working directory). Every command goes through
# /bin/busybox explicitly, so the app needs nothing else on PATH: the same files run in the
# `FROM scratch` image and as a native process.
#
# Environment:
#   PORT      port to listen on (default 8080)
#   HEALTH    ok | fail | slow: what GET /health answers at first (default ok)
#   HEALTH_DELAY  seconds a slow /health takes (default 3)
#   DATA_DIR  a directory (a mounted volume) the app records its starts in and /data reads
#   START_DELAY  seconds to wait before listening (a slow-booting app; default 0)
#   IGNORE_TERM  set: ignore SIGTERM, as shell entrypoints and many runtimes as PID 1 do (a
#             stop then waits out its whole grace period)
BB=/bin/busybox
cd "$($BB dirname "$0")" || exit 70
TESTAPP_DIR="$($BB pwd)"
PORT="${PORT:-8080}"
TESTAPP_PID=$$
export TESTAPP_DIR PORT TESTAPP_PID

$BB rm -f "$TESTAPP_DIR/exit.code"
case "${HEALTH:-ok}" in
  ok) $BB touch "$TESTAPP_DIR/health.ok"; $BB rm -f "$TESTAPP_DIR/health.slow" ;;
  slow) $BB touch "$TESTAPP_DIR/health.ok" "$TESTAPP_DIR/health.slow" ;;
  fail) $BB rm -f "$TESTAPP_DIR/health.ok" "$TESTAPP_DIR/health.slow" ;;
  *) echo "testapp: HEALTH must be ok, fail or slow, not '$HEALTH'" >&2; exit 64 ;;
esac

if [ -n "$DATA_DIR" ]; then
  if $BB mkdir -p "$DATA_DIR" && echo "start $($BB date +%s)" >>"$DATA_DIR/starts.log"; then
    :
  else
    echo "testapp: cannot write to DATA_DIR=$DATA_DIR" >&2
  fi
fi

if [ -n "$START_DELAY" ]; then
  $BB sleep "$START_DELAY"
fi

# The handler logs requests to fd 3, which stays this script's stdout (nc gives the handler
# the connection as stdin and stdout).
exec 3>&1
$BB nc -ll -p "$PORT" -e $BB sh "$TESTAPP_DIR/handler.sh" &
server=$!

# This shell may be PID 1 in a container, where signals without a handler are ignored: without
# these traps `docker stop` would always wait out its whole grace period.
stop() {
  $BB kill "$server" 2>/dev/null
  wait "$server" 2>/dev/null
  exit "$1"
}
if [ -n "$IGNORE_TERM" ]; then
  trap '' TERM
  echo "testapp ignores SIGTERM" >&2
else
  trap 'echo "testapp stopping"; stop 0' TERM INT
fi
trap 'stop "$($BB cat "$TESTAPP_DIR/exit.code" 2>/dev/null || echo 1)"' USR1

echo "testapp listening on $PORT"
echo "testapp health mode ${HEALTH:-ok}" >&2
wait "$server"
code=$?
echo "testapp server exited with status $code" >&2
exit "$code"
