# One HTTP request of the test app: `nc` runs this with the connection as stdin and stdout.
# Routes (GET only; every answer is text/plain and closes the connection):
#   /health             200 "ok" while health.ok exists (slowly if health.slow exists), else 503
#   /log?TOKEN          writes "testapp log TOKEN" to stdout;  /err?TOKEN: "testapp err TOKEN" to stderr
#   /env?NAME           the value of env var NAME (404 if unset)
#   /data               the contents of $DATA_DIR/data.txt (404 if absent)
#   /data/write?VALUE   writes VALUE to $DATA_DIR/data.txt
#   /exit?CODE          makes the app exit with CODE
#   /hostname           the host name
BB=/bin/busybox
CR="$(printf '\r')"

respond() {
  echo "testapp request $method $target -> $1" >&3
  printf 'HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n' \
    "$1" "$((${#2} + 1))" "$2"
  exit 0
}

read -r method target proto || exit 0
# Drain the headers, so closing the connection cannot reset it under the client's feet.
while read -r header; do
  header="${header%"$CR"}"
  [ -z "$header" ] && break
done

path="${target%%\?*}"
query=""
case "$target" in *\?*) query="${target#*\?}" ;; esac
# Only plain tokens in queries: they end up in files and log lines.
case "$query" in *[!A-Za-z0-9_.-]*) respond "400 Bad Request" "query must be [A-Za-z0-9_.-]" ;; esac
[ "$method" = GET ] || respond "405 Method Not Allowed" "GET only"

case "$path" in
  /health)
    if [ -e "$TESTAPP_DIR/health.ok" ]; then
      [ -e "$TESTAPP_DIR/health.slow" ] && $BB sleep "${HEALTH_DELAY:-3}"
      respond "200 OK" "ok"
    fi
    respond "503 Service Unavailable" "unhealthy"
    ;;
  /)
    respond "200 OK" "testapp"
    ;;
  /log)
    echo "testapp log $query" >&3
    respond "200 OK" "$query"
    ;;
  /err)
    echo "testapp err $query" >&2
    respond "200 OK" "$query"
    ;;
  /env)
    case "$query" in
      "" | [0-9]* | *[!A-Za-z0-9_]*) respond "400 Bad Request" "not a variable name" ;;
    esac
    # Safe: the name was checked to be a shell identifier just above.
    eval "isset=\${$query+x} value=\${$query-}"
    [ -n "$isset" ] || respond "404 Not Found" "unset"
    respond "200 OK" "$value"
    ;;
  /data)
    [ -n "$DATA_DIR" ] || respond "404 Not Found" "no DATA_DIR"
    [ -e "$DATA_DIR/data.txt" ] || respond "404 Not Found" "no data"
    respond "200 OK" "$($BB cat "$DATA_DIR/data.txt")"
    ;;
  /data/write)
    [ -n "$DATA_DIR" ] || respond "404 Not Found" "no DATA_DIR"
    if echo "$query" >"$DATA_DIR/data.txt"; then
      respond "200 OK" "$query"
    fi
    respond "500 Internal Server Error" "cannot write $DATA_DIR/data.txt"
    ;;
  /exit)
    case "$query" in "" | *[!0-9]*) respond "400 Bad Request" "exit code must be a number" ;; esac
    echo "$query" >"$TESTAPP_DIR/exit.code"
    $BB kill -USR1 "$TESTAPP_PID"
    respond "200 OK" "exiting with $query"
    ;;
  /hostname)
    respond "200 OK" "$($BB hostname)"
    ;;
esac
respond "404 Not Found" "no route $path"
