#!/bin/sh
# server.sh BINDIR - kiln-server's HTTP and ingestion benchmarks, on loopback only.
#
# 1. Stores 1,000 jobs, then for each MHD threading mode (epoll, pool of 2,
#    thread per connection) measures with wrk requests/s and p50/p99 latency
#    of GET /api/v1/jobs, GET /api/v1/jobs/{id} and POST /api/v1/jobs.
# 2. Metric ingestion from a synthetic pool (bench_ingest, a test double of
#    a pool): points/s until every point is acked (committed), batched by the
#    link and one message per point.
# Every load is bounded: DURATION seconds per wrk run (default 5), CONNS
# connections (16), POINTS points (200000). Needs wrk (Debian package wrk).
# TLS=1 serves HTTPS (--tls-cert/--tls-key with a P-256 certificate made here
# by openssl), so the two tables show what TLS costs; MODES picks threading
# modes (default "epoll pool per-connection").
set -eu
bindir=$(cd "$1" && pwd)
dur=${DURATION:-5}
conns=${CONNS:-16}
points=${POINTS:-200000}
modes=${MODES:-epoll pool per-connection}
work=$(mktemp -d /tmp/kiln-bench-XXXXXX)
server=""
cleanup() {
    [ -n "$server" ] && kill -INT "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
command -v wrk >/dev/null || { echo "bench/server.sh: wrk is not installed (apt-get install wrk)"; exit 1; }

scheme=http
tls_args=""
curl_tls=""
if [ "${TLS:-0}" = 1 ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
        -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
    scheme=https
    tls_args="--tls-cert $work/cert.pem --tls-key $work/key.pem" # $work has no spaces
    curl_tls="--cacert $work/cert.pem"
fi
start() { # MODE
    rm -f "$work/ports"
    "$bindir/kiln-server" --http 127.0.0.1:0 --broker 'tcp://127.0.0.1:*' --data-dir "$work/data" \
        --port-file "$work/ports" --http-mode "$1" --http-threads 2 $tls_args >>"$work/server.log" 2>&1 &
    server=$!
    while [ ! -s "$work/ports" ]; do sleep 0.05; done
    url="$scheme://127.0.0.1:$(cut -d' ' -f1 "$work/ports")"
    ep=$(cut -d' ' -f2 "$work/ports")
}
stop() {
    kill -INT "$server"
    wait "$server" || true
    server=""
}

cat >"$work/job.json" <<'EOF'
{"name": "bench", "model": {"arch": "resnet_cifar", "depth": 20, "widths": [16, 32, 64]},
 "data": {"dataset": "fashion-mnist"}, "optim": {"epochs": 1}, "resources": {"ranks": 64}}
EOF
cat >"$work/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[$(cat "$work/job.json")]]
EOF

start pool
echo "== $scheme (1,000 jobs stored; wrk -t2 -c$conns -d${dur}s on loopback; $(nproc) cores shared by server and wrk)"
i=0
while [ "$i" -lt 1000 ]; do
    curl $curl_tls -s -o /dev/null -H 'Content-Type: application/json' --data-binary @"$work/job.json" "$url/api/v1/jobs"
    i=$((i + 1))
done
id=$(curl $curl_tls -s "$url/api/v1/jobs?page_size=1" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -1)
stop
# Each mode starts from the same 1,000 jobs (POST adds to them).
cp -r "$work/data" "$work/data.1000"

report() { # LABEL MODE wrk-output
    rps=$(echo "$3" | awk '/Requests\/sec/ { print $2 }')
    p50=$(echo "$3" | awk '$1 == "50%" { print $2 }')
    p99=$(echo "$3" | awk '$1 == "99%" { print $2 }')
    printf "%-16s %-22s %10s req/s   p50 %8s   p99 %8s\n" "$2" "$1" "$rps" "$p50" "$p99"
}
for mode in $modes; do
    rm -rf "$work/data"
    cp -r "$work/data.1000" "$work/data"
    start "$mode"
    report "GET /api/v1/jobs" "$mode" "$(wrk -t2 -c"$conns" -d"${dur}s" --latency "$url/api/v1/jobs" 2>&1)"
    report "GET /api/v1/jobs/{id}" "$mode" "$(wrk -t2 -c"$conns" -d"${dur}s" --latency "$url/api/v1/jobs/$id" 2>&1)"
    report "POST /api/v1/jobs" "$mode" "$(wrk -t2 -c"$conns" -d"${dur}s" --latency -s "$work/post.lua" "$url/api/v1/jobs" 2>&1)"
    stop
done
echo "(GET /api/v1/jobs returns the newest 50 jobs; POST stores and fsyncs each job)"

echo
echo "== metric ingestion (synthetic pool, $points points)"
start pool
for single in "" --single; do
    sed 's/"ranks": 64/"ranks": 1/' "$work/job.json" >"$work/one.json"
    curl $curl_tls -s -o /dev/null -H 'Content-Type: application/json' --data-binary @"$work/one.json" "$url/api/v1/jobs"
    "$bindir/bench_ingest" --connect "$ep" --points "$points" $single
done
stop
