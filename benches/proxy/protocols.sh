#!/usr/bin/env bash
# clank-proxy vs nginx (vs HAProxy) on both cores: HTTP/2 over TLS, new TLS handshakes per
# second (full and resumed), WebSocket echo. Same conventions as run.sh (one backend, interleaved
# targets, medians of ROUNDS rounds, loopback only); issue #20 item 2.
#
#   benches/proxy/protocols.sh      # DUR=5 ROUNDS=3 by default
#
# Layout on a 2-core machine ("pinned apart as far as 2 cores allow"):
# - Proxies get both cores: clank-proxy `--threads 2` (tokio multi-thread runtime, 2 workers),
#   nginx `worker_processes 2`, HAProxy `nbthread 2`; each under `taskset -c 0,1`.
# - Backends on core 1: nginx (1 worker) serving 16 KiB and 1 MiB static files (HTTP/1.1
#   upstream for every proxy, keep-alive reused; also HTTP/2 over TLS as the "direct" reference
#   for added p99), and `ws_echo server` (crates/clank-proxy/examples, one thread) for WebSocket.
# - Load generators on core 0, one thread each: h2load (nghttp2-client), `tls_handshakes` and
#   `ws_echo client` (crates/clank-proxy/examples).
# So each core carries half the proxy plus either the load generator or the backend.
#
# TLS 1.3 everywhere: nginx 1.22's default `ssl_protocols` stops at TLSv1.2, so both nginx
# configurations name TLSv1.3 (HAProxy 2.6 and rustls offer it by default).
#
# Rows (BODIES = 16k 1m):
# - h2: `h2load -t1 -c16 -m10` (1 MiB: `-m2`) over TLS (ALPN h2) for DUR → req/s; p99 from
#   h2load's per-request log at a fixed rate (`-c10 --rps`, 2,000 req/s in total for 16 KiB,
#   200 for 1 MiB); added p99 = through the proxy − straight to the backend's own HTTP/2 TLS.
# - handshakes: `tls_handshakes` with HS_CONNS loops, each a new TCP + TLS 1.3 connection, one
#   `GET /16k` with `Connection: close`; full (no resumption) and resumed (PSK ticket from the
#   loop's previous connection). Body 16 KiB only (a 1 MiB body per new connection is the h2
#   row's bulk transfer again).
# - ws: `ws_echo client` with WS_CONNS WebSockets, each sending a BODY-sized binary message and
#   waiting for its echo, back to back → messages/s and round-trip p99 (at that load); added
#   p99 = through the proxy − straight to the echo server.
# - Every proxy row also gets CPU µs per operation: user + system time of the target's
#   processes (all threads; nginx's workers) over the capacity run, from /proc, divided by the
#   operations done. On a shared machine it moves much less than the rate does.
# Needs root (nginx `user root`, apt-get); the tool binaries come from `cargo build --release`
# (BIN overrides target/release; CLANK_BUILD=0 skips the build).
set -euo pipefail

DUR=${DUR:-5}
ROUNDS=${ROUNDS:-3}
HS_CONNS=${HS_CONNS:-32}
WS_CONNS=${WS_CONNS:-16}
BODIES=(${BODIES:-16k 1m})
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${WORKDIR:-/tmp/clank-proxy-protocols}
BACKEND_PORT=19080 BACKEND_TLS=19090 WS_PORT=19079
CLANK_PORT=19081 NGINX_PORT=19082 HAPROXY_PORT=19083
CLANK_TLS=19441 NGINX_TLS=19442 HAPROXY_TLS=19443

need=()
for tool in nginx haproxy h2load taskset curl openssl; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
if ((${#need[@]})); then
    pkgs=("${need[@]/taskset/util-linux}")
    pkgs=("${pkgs[@]/h2load/nghttp2-client}")
    echo "installing ${pkgs[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >&2
fi
if [[ $(nproc) -lt 2 ]]; then
    echo "needs 2 cores" >&2
    exit 1
fi

# The workspace's release profile, default target directory (CLANK_BUILD=0 to skip).
BIN=${BIN:-$ROOT/target/release}
if [[ ${CLANK_BUILD:-1} != 0 ]]; then
    echo "building clank-proxy and its examples (release)" >&2
    (cd "$ROOT" && cargo build --release -q -p clank-proxy --bin clank-proxy \
        --example ws_echo --example tls_handshakes)
fi
CLANK_BIN="$BIN/clank-proxy"
WS_ECHO="$BIN/examples/ws_echo"
TLS_HS="$BIN/examples/tls_handshakes"

rm -rf "$W"
mkdir -p "$W/www" "$W/backend" "$W/nginx"
head -c 16384 /dev/zero | tr '\0' 'b' >"$W/www/16k"
head -c 1048576 /dev/zero | tr '\0' 'm' >"$W/www/1m"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$W/tls.key" -out "$W/tls.crt" 2>/dev/null
cat "$W/tls.crt" "$W/tls.key" >"$W/tls.pem"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

cat >"$W/backend/nginx.conf" <<CONF
user root;
worker_processes 1;
daemon off;
pid $W/backend/nginx.pid;
error_log $W/backend/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    open_file_cache max=16;
    default_type application/octet-stream;
    client_body_temp_path $W/backend/body;
    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        listen 127.0.0.1:$BACKEND_TLS ssl http2 backlog=4096;
        ssl_certificate $W/tls.crt;
        ssl_certificate_key $W/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $W/www;
    }
}
CONF

cat >"$W/nginx/nginx.conf" <<CONF
user root;
worker_processes 2;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path $W/nginx/body;
    proxy_temp_path $W/nginx/proxy;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 128;
        keepalive_requests 10000000;
    }
    map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        listen 127.0.0.1:$NGINX_TLS ssl http2 backlog=4096;
        ssl_certificate $W/tls.crt;
        ssl_certificate_key $W/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
        location /ws {
            proxy_pass http://127.0.0.1:$WS_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
            proxy_read_timeout 300s;
        }
    }
}
CONF

cat >"$W/haproxy.cfg" <<CONF
global
    nbthread 2
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    option http-keep-alive
    option forwardfor
    http-reuse always
frontend fe
    bind 127.0.0.1:$HAPROXY_PORT
    use_backend ws if { path_beg /ws }
    default_backend be
frontend fe_tls
    bind 127.0.0.1:$HAPROXY_TLS ssl crt $W/tls.pem alpn h2,http/1.1
    default_backend be
backend be
    server s1 127.0.0.1:$BACKEND_PORT
backend ws
    server w1 127.0.0.1:$WS_PORT
CONF

SERVICE=0190a000-0000-7000-8000-000000000001
DEPLOYMENT=0190a000-0000-7000-8000-000000000002
WS_SERVICE=0190a000-0000-7000-8000-000000000003
WS_DEPLOYMENT=0190a000-0000-7000-8000-000000000004
cat >"$W/routes.json" <<CONF
{"version":1,"routes":[
 {"service":"$SERVICE","endpoint":{"mode":"lan_only","domains":["bench.local"]},
  "target":{"deployment":"$DEPLOYMENT","addrs":["127.0.0.1:$BACKEND_PORT"]}},
 {"service":"$WS_SERVICE","endpoint":{"mode":"lan_only","domains":["ws.local"]},
  "target":{"deployment":"$WS_DEPLOYMENT","addrs":["127.0.0.1:$WS_PORT"]}}]}
CONF
cat >"$W/clank.json" <<CONF
{"listen":"127.0.0.1:$CLANK_PORT","state_file":"$W/routes.json","fallback_service":"$SERVICE",
 "tls_listen":"127.0.0.1:$CLANK_TLS",
 "tls_certificates":[{"domains":["localhost"],"cert_file":"$W/tls.crt","key_file":"$W/tls.key"}]}
CONF

taskset -c 1 nginx -c "$W/backend/nginx.conf" -p "$W/backend" -e "$W/backend/error.log" &
pids+=($!)
taskset -c 1 "$WS_ECHO" server "127.0.0.1:$WS_PORT" &
pids+=($!)
taskset -c 0,1 "$CLANK_BIN" --config "$W/clank.json" --threads 2 &
pids+=($!)
CLANK_PID=$!
taskset -c 0,1 nginx -c "$W/nginx/nginx.conf" -p "$W/nginx" -e "$W/nginx/error.log" &
pids+=($!)
NGINX_PID=$!
taskset -c 0,1 haproxy -f "$W/haproxy.cfg" -db &
pids+=($!)
HAPROXY_PID=$!
echo "clank-proxy pid $CLANK_PID" >&2

for port in $BACKEND_PORT $CLANK_PORT $NGINX_PORT $HAPROXY_PORT; do
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/16k" 2>/dev/null && break
        sleep 0.1
    done
    curl -fsS -o /dev/null "http://127.0.0.1:$port/16k"
done
for port in $BACKEND_TLS $CLANK_TLS $NGINX_TLS $HAPROXY_TLS; do
    curl -fsSk --http2 -o /dev/null "https://localhost:$port/1m"
done

declare -A TLS_PORT=([direct]=$BACKEND_TLS [clank]=$CLANK_TLS [nginx]=$NGINX_TLS [haproxy]=$HAPROXY_TLS)
declare -A WS_ADDR=([direct]=127.0.0.1:$WS_PORT [clank]=127.0.0.1:$CLANK_PORT
    [nginx]=127.0.0.1:$NGINX_PORT [haproxy]=127.0.0.1:$HAPROXY_PORT)
TARGETS=(direct clank nginx haproxy)
PROXIES=(clank nginx haproxy)
declare -A STREAMS=([16k]=10 [1m]=2) RPS=([16k]=200 [1m]=20)

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
h2_capacity() { # port body -> "req/s succeeded"
    taskset -c 0 h2load -t1 -c16 -m"${STREAMS[$2]}" -D "$DUR" "https://localhost:$1/$2" 2>/dev/null |
        awk '/^finished in/ {gsub(",", "", $4); r = $4}
             /^requests:/ {if ($10 != 0) print "  failed: " $0 > "/dev/stderr"; n = $8}
             END {print r, n}'
}
declare -A PID=([clank]=$CLANK_PID [nginx]=$NGINX_PID [haproxy]=$HAPROXY_PID)
cpu_ticks() { # target -> user+system ticks (1/100 s) of its processes (all threads, workers)
    local t=0 p
    [[ -n ${PID[$1]:-} ]] || { echo 0; return; }
    for p in ${PID[$1]} $(pgrep -P "${PID[$1]}"); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
per_op() { # ticks ops -> CPU µs per operation
    awk -v t="$1" -v n="$2" 'BEGIN {if (n > 0) printf "%.1f", t * 10000 / n; else print 0}'
}
h2_p99() { # port body -> p99 in µs at a fixed rate (10 clients x RPS[body] req/s)
    local log="$W/h2.log"
    rm -f "$log"
    taskset -c 0 h2load -t1 -c10 -m1 --rps="${RPS[$2]}" -D "$DUR" --log-file="$log" \
        "https://localhost:$1/$2" >/dev/null 2>&1
    awk '$2 == 200 {print $3}' "$log" | sort -n | awk '{v[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; print v[i]}'
}

declare -A R
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq "$ROUNDS"); do
    for body in "${BODIES[@]}"; do
        for t in "${TARGETS[@]}"; do
            a=$(cpu_ticks "$t")
            read -r c n < <(h2_capacity "${TLS_PORT[$t]}" "$body")
            u=$(per_op $(($(cpu_ticks "$t") - a)) "$n")
            l=$(h2_p99 "${TLS_PORT[$t]}" "$body")
            echo "round $round h2 $body $t: $c req/s, $u CPU µs/req, p99 $l us" >&2
            R[h2,$body,$t]+="$c " R[h2p,$body,$t]+="$l " R[h2u,$body,$t]+="$u "
        done
    done
    for mode in full resumed; do
        for t in "${PROXIES[@]}"; do
            a=$(cpu_ticks "$t")
            out=$(taskset -c 0 "$TLS_HS" "127.0.0.1:${TLS_PORT[$t]}" /16k "$mode" "$HS_CONNS" "$DUR")
            u=$(per_op $(($(cpu_ticks "$t") - a)) "$(awk '{print $2}' <<<"$out")")
            echo "round $round handshakes $mode $t: $out cpu_us $u" >&2
            R[hsu,$mode,$t]+="$u "
            R[hs,$mode,$t]+="$(awk '{print $4}' <<<"$out") "
            R[hsr,$mode,$t]+="$(awk '{print $6}' <<<"$out") "
            R[hsp,$mode,$t]+="$(awk '{print $12}' <<<"$out") "
        done
    done
    for body in "${BODIES[@]}"; do
        for t in "${TARGETS[@]}"; do
            a=$(cpu_ticks "$t")
            out=$(taskset -c 0 "$WS_ECHO" client "${WS_ADDR[$t]}" /ws "$body" "$WS_CONNS" "$DUR")
            u=$(per_op $(($(cpu_ticks "$t") - a)) "$(awk '{print $2}' <<<"$out")")
            echo "round $round ws $body $t: $out cpu_us $u" >&2
            R[wsu,$body,$t]+="$u "
            R[ws,$body,$t]+="$(awk '{print $4}' <<<"$out") "
            R[wsp,$body,$t]+="$(awk '{print $10}' <<<"$out") "
        done
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# PERF="h2:16k h2:16k:nginx ws:1m ..." (rows as KIND:BODY[:TARGET], KIND one of h2 hs ws, BODY
# the mode full|resumed for hs, TARGET clank (default), nginx or haproxy): after the rounds, run
# each named row once more with the target's processes under `perf record` (Debian's
# linux-perf) and `perf stat`, and keep the top of `perf report` in $W/perf-KIND-BODY-TARGET.txt
# (ROUNDS=0: profiles only, no table).
for row in ${PERF:-}; do
    IFS=: read -r kind body t <<<"$row"
    t=${t:-clank}
    out="$W/perf-$kind-$body-$t"
    command -v perf >/dev/null ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends linux-perf >&2
    procs=$(echo "${PID[$t]}" $(pgrep -P "${PID[$t]}") | tr ' ' ,)
    perf record -q -F 999 -g -o "$out.data" -p "$procs" -- sleep "$DUR" 2>/dev/null &
    rec=$!
    perf stat -e task-clock,context-switches -o "$out.stat" -p "$procs" -- sleep "$DUR" &
    st=$!
    case $kind in
    h2) h2_capacity "${TLS_PORT[$t]}" "$body" >"$out.run" ;;
    hs) taskset -c 0 "$TLS_HS" "127.0.0.1:${TLS_PORT[$t]}" /16k "$body" "$HS_CONNS" "$DUR" >"$out.run" ;;
    ws) taskset -c 0 "$WS_ECHO" client "${WS_ADDR[$t]}" /ws "$body" "$WS_CONNS" "$DUR" >"$out.run" ;;
    esac
    wait "$rec" "$st" || true
    {
        echo "run: $(cat "$out.run")"
        grep -E 'task-clock|context-switches' "$out.stat"
        perf report -i "$out.data" --no-children --sort dso,sym --percent-limit 0.05 --stdio \
            -g none 2>/dev/null | grep '%'
    } >"$out.txt" || true
    echo "profile of $t, $kind $body: $out.txt" >&2
done
((ROUNDS > 0)) || exit 0 # ROUNDS=0 PERF=...: profiles only

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f×", a / b}'; }
# CPU per operation: the proxy's own user+system time over the capacity run / operations done
# (lower is better; "vs nginx" there is nginx's cost / this one's, so > 1 is better too).
cell() { # kind key target -> "| rate | vs nginx | CPU µs/op | vs nginx |"
    local c n u un
    c=$(med "${R[$1,$2,$3]}") n=$(med "${R[$1,$2,nginx]}")
    if [[ $3 == direct ]]; then
        printf '| %.0f | — | — | — ' "$c"
    else
        u=$(med "${R[${1}u,$2,$3]}") un=$(med "${R[${1}u,$2,nginx]}")
        printf '| %.0f | %s | %s | %s ' "$c" "$(ratio "$c" "$n")" "$u" "$(ratio "$un" "$u")"
    fi
}
echo
echo "| row | body | target | rate | vs nginx | CPU µs/op | CPU vs nginx | p99 | added p99 |"
echo "|---|---|---|---|---|---|---|---|---|"
for body in "${BODIES[@]}"; do
    base=$(med "${R[h2p,$body,direct]}")
    for t in "${TARGETS[@]}"; do
        l=$(med "${R[h2p,$body,$t]}")
        if [[ $t == direct ]]; then added="—"; else added="$((l - base)) µs"; fi
        printf '| h2 over TLS, req/s | %s | %s %s| %s µs | %s |\n' "$body" "$t" "$(cell h2 "$body" "$t")" "$l" "$added"
    done
done
for mode in full resumed; do
    for t in "${PROXIES[@]}"; do
        l=$(med "${R[hsp,$mode,$t]}") r=$(med "${R[hsr,$mode,$t]}")
        printf '| new TLS connections/s, %s (%s%% resumed) | 16k | %s %s| %s µs | — |\n' \
            "$mode" "$r" "$t" "$(cell hs "$mode" "$t")" "$l"
    done
done
for body in "${BODIES[@]}"; do
    base=$(med "${R[wsp,$body,direct]}")
    for t in "${TARGETS[@]}"; do
        l=$(med "${R[wsp,$body,$t]}")
        if [[ $t == direct ]]; then added="—"; else added="$((l - base)) µs"; fi
        printf '| WebSocket echo, msg/s | %s | %s %s| %s µs | %s |\n' "$body" "$t" "$(cell ws "$body" "$t")" "$l" "$added"
    done
done
