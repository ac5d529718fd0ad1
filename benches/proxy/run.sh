#!/usr/bin/env bash
# clank-proxy vs nginx vs HAProxy, side by side in one run, same backend, same pinning.
#
#   benches/proxy/run.sh            # DUR=10 ROUNDS=3 RATE=2000 by default
#
# - Backend: nginx (1 worker) serving a 64 B and a 16 KiB static file, pinned to core 1.
# - Proxies, each pinned to core 0 with one worker/thread, all reusing upstream connections:
#   clank-proxy (release build, `--threads 1` = tokio current_thread runtime),
#   nginx (worker_processes 1, upstream keepalive), HAProxy (nbthread 1, http-reuse always).
#   Access logs off everywhere.
# - Load generators on core 1: `wrk` (1 thread, 64 keep-alive connections) for capacity;
#   our `fixed_rate` tool (crates/clank-proxy/examples; µs resolution, raw keep-alive
#   HTTP/1.1) at a fixed total rate (RATE req/s over 10 connections) for p99. "Added p99" = p99 through the proxy - p99 straight to the backend.
# - TLS row: the same 64 B over HTTPS keep-alive (self-signed P-256 certificate for
#   `localhost`, TLS 1.3, HTTP/1.1), capacity only.
# - Each figure is the median of ROUNDS rounds; targets are interleaved within a round so
#   background noise hits all of them alike. Loopback only.
set -euo pipefail

DUR=${DUR:-10}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-2000}
CONNS=${CONNS:-64}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${WORKDIR:-/tmp/clank-proxy-bench}
BACKEND_PORT=18080 CLANK_PORT=18081 NGINX_PORT=18082 HAPROXY_PORT=18083
CLANK_TLS=18444 NGINX_TLS=18445 HAPROXY_TLS=18446

need=()
for tool in nginx haproxy wrk taskset curl openssl; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
if ((${#need[@]})); then
    pkgs=("${need[@]/taskset/util-linux}")
    echo "installing ${pkgs[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >&2
fi

if [[ $(nproc) -lt 2 ]]; then
    echo "needs 2 cores (proxy on 0, backend + load on 1)" >&2
    exit 1
fi

# Release with fat LTO and one codegen unit (what a shipped binary would use), in its own
# target directory so the workspace's shared release cache is not rebuilt by the profile change.
echo "building clank-proxy (release, LTO)" >&2
BENCH_TARGET="$ROOT/target/bench-proxy"
(cd "$ROOT" && CARGO_TARGET_DIR="$BENCH_TARGET" CARGO_PROFILE_RELEASE_LTO=fat \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
    cargo build --release -q -p clank-proxy --bin clank-proxy --example fixed_rate)
CLANK_BIN="$BENCH_TARGET/release/clank-proxy"
FIXED_RATE="$BENCH_TARGET/release/examples/fixed_rate"

rm -rf "$W"
mkdir -p "$W/www" "$W/backend" "$W/nginx"
head -c 64 /dev/zero | tr '\0' 'a' >"$W/www/64"
head -c 16384 /dev/zero | tr '\0' 'b' >"$W/www/16k"
# One self-signed P-256 certificate for `localhost`, served by all three proxies.
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
        root $W/www;
    }
}
CONF

cat >"$W/nginx/nginx.conf" <<CONF
user root;
worker_processes 1;
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
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        listen 127.0.0.1:$NGINX_TLS ssl backlog=4096;
        ssl_certificate $W/tls.crt;
        ssl_certificate_key $W/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;  # nginx 1.22 offers only up to 1.2 by default
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
    }
}
CONF

cat >"$W/haproxy.cfg" <<CONF
global
    nbthread 1
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
    default_backend be
frontend fe_tls
    bind 127.0.0.1:$HAPROXY_TLS ssl crt $W/tls.pem
    default_backend be
backend be
    server s1 127.0.0.1:$BACKEND_PORT
CONF

SERVICE=0190a000-0000-7000-8000-000000000001
DEPLOYMENT=0190a000-0000-7000-8000-000000000002
cat >"$W/routes.json" <<CONF
{"version":1,"routes":[{"service":"$SERVICE","endpoint":{"mode":"lan_only","domains":["bench.local"]},
  "target":{"deployment":"$DEPLOYMENT","addrs":["127.0.0.1:$BACKEND_PORT"]}}]}
CONF
cat >"$W/clank.json" <<CONF
{"listen":"127.0.0.1:$CLANK_PORT","state_file":"$W/routes.json","fallback_service":"$SERVICE",
 "tls_listen":"127.0.0.1:$CLANK_TLS",
 "tls_certificates":[{"domains":["localhost"],"cert_file":"$W/tls.crt","key_file":"$W/tls.key"}]}
CONF

taskset -c 1 nginx -c "$W/backend/nginx.conf" -p "$W/backend" -e "$W/backend/error.log" &
pids+=($!)
taskset -c 0 "$CLANK_BIN" --config "$W/clank.json" --threads 1 &
pids+=($!)
taskset -c 0 nginx -c "$W/nginx/nginx.conf" -p "$W/nginx" -e "$W/nginx/error.log" &
pids+=($!)
taskset -c 0 haproxy -f "$W/haproxy.cfg" -db &
pids+=($!)

for port in $BACKEND_PORT $CLANK_PORT $NGINX_PORT $HAPROXY_PORT; do
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/64" 2>/dev/null && break
        sleep 0.1
    done
    curl -fsS -o /dev/null "http://127.0.0.1:$port/64"
done
for port in $CLANK_TLS $NGINX_TLS $HAPROXY_TLS; do
    curl -fsSk -o /dev/null "https://localhost:$port/64"
done

declare -A PORT=([direct]=$BACKEND_PORT [clank]=$CLANK_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT)
declare -A TLS_PORT=([clank]=$CLANK_TLS [nginx]=$NGINX_TLS [haproxy]=$HAPROXY_TLS)
TARGETS=(direct clank nginx haproxy)
SIZES=(64 16k)

capacity() { # url -> req/s
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" "$1" | awk '/Requests\/sec/ {print $2}'
}
warm() { taskset -c 1 wrk -t1 -c"$CONNS" -d2s "$1" >/dev/null; }
p99() { # port path -> p99 in microseconds (non-200 responses reported on stderr)
    local out
    out=$(taskset -c 1 "$FIXED_RATE" "127.0.0.1:$1" "/$2" "$RATE" "$DUR" 10)
    awk '$4 != 0 {print "  non-200 responses: " $0 > "/dev/stderr"}' <<<"$out"
    awk '{print $10}' <<<"$out"
}
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

declare -A CAP P99
for round in $(seq "$ROUNDS"); do
    for size in "${SIZES[@]}"; do
        for t in "${TARGETS[@]}"; do
            url="http://127.0.0.1:${PORT[$t]}/$size"
            warm "$url"
            c=$(capacity "$url")
            l=$(p99 "${PORT[$t]}" "$size")
            echo "round $round $t $size: ${c} req/s, p99 ${l} us" >&2
            CAP[$t,$size]+="$c "
            P99[$t,$size]+="$l "
        done
    done
    # TLS row: keep-alive HTTPS (handshakes amortised), 64 B, capacity only.
    for t in clank nginx haproxy; do
        url="https://localhost:${TLS_PORT[$t]}/64"
        warm "$url"
        c=$(capacity "$url")
        echo "round $round $t tls 64: ${c} req/s" >&2
        CAP[$t,tls]+="$c "
    done
done

echo
echo "| body | target | capacity (req/s) | p99 at $RATE req/s | added p99 |"
echo "|---|---|---|---|---|"
for size in "${SIZES[@]}"; do
    base=$(tr ' ' '\n' <<<"${P99[direct,$size]}" | grep . | median)
    for t in "${TARGETS[@]}"; do
        c=$(tr ' ' '\n' <<<"${CAP[$t,$size]}" | grep . | median)
        l=$(tr ' ' '\n' <<<"${P99[$t,$size]}" | grep . | median)
        if [[ $t == direct ]]; then added="—"; else added="$((l - base)) µs"; fi
        printf '| %s | %s | %.0f | %s µs | %s |\n' "$size" "$t" "$c" "$l" "$added"
    done
done
for t in clank nginx haproxy; do
    c=$(tr ' ' '\n' <<<"${CAP[$t,tls]}" | grep . | median)
    printf '| 64 TLS | %s | %.0f | — | — |\n' "$t" "$c"
done
