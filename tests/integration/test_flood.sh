#!/bin/sh
# test_flood.sh - a flood of idle connections does not lock anyone out.
#
# 600 sockets from 10 loopback addresses (127.0.0.2-11, 60 each: under the
# per-address limit of 64) connect and say nothing, more than the server's
# connection limit (512). The header timeout is set long (30 s), so only the
# eviction of the oldest idle connections can make room. While they are held,
# /healthz and an authenticated GET /api/v1/jobs must each answer 200 within
# 1 s, five times; the test prints the slowest answer of each. Bounded: the
# flood lasts at most 20 s.
set -u
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"

"$KILN_BIN/kiln-server" new-token flood-reader read >"$TMP/new" || die "new-token"
sed -n 2p "$TMP/new" >"$TMP/tokens"
tok=$(sed -n 1p "$TMP/new")
start_server 0 'tcp://127.0.0.1:*' --tokens "$TMP/tokens" --header-timeout 30 --idle-timeout 60

cat >"$TMP/flood.py" <<'EOF'
import socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
socks, refused = [], 0
for a in range(2, 12):
    for _ in range(60):
        s = socket.socket()
        s.bind(("127.0.0.%d" % a, 0))
        try:
            s.connect(("127.0.0.1", port))
            socks.append(s)
        except OSError:
            refused += 1
open(out + ".ready", "w").write("%d %d\n" % (len(socks), refused))
deadline = time.time() + 20
while time.time() < deadline:
    try:
        open(out + ".stop").close()
        break
    except OSError:
        time.sleep(0.05)
closed = 0
for s in socks:
    s.setblocking(False)
    try:
        closed += s.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
open(out, "w").write("%d %d %d\n" % (len(socks), refused, closed))
EOF
/usr/bin/python3 "$TMP/flood.py" "$PORT" "$TMP/flood" &
flood=$!
cleanup_hook() {
    touch "$TMP/flood.stop"
    kill "$flood" 2>/dev/null || :
    [ -z "$SERVER" ] || kill -9 "$SERVER" 2>/dev/null || :
    wait 2>/dev/null || :
}
n=0
while [ ! -s "$TMP/flood.ready" ]; do
    n=$((n + 1))
    [ "$n" -gt 300 ] && die "the flood did not connect within 15 s"
    sleep 0.05
done
read -r held refused <"$TMP/flood.ready"
[ "$held" -gt 512 ] || die "only $held idle connections were made ($refused refused)"

# the server is asked while the flood holds its connections
worst_h=0 worst_a=0
i=0
while [ "$i" -lt 5 ]; do
    out=$(curl -s -m 5 -o /dev/null -w '%{http_code} %{time_total}' "$URL/healthz")
    set -- $out
    [ "$1" = 200 ] || die "/healthz under the flood: '$out'"
    worst_h=$(echo "$worst_h $2" | awk '{ print ($2 > $1) ? $2 : $1 }')
    out=$(curl -s -m 5 -o /dev/null -w '%{http_code} %{time_total}' \
        -H "Authorization: Bearer $tok" "$URL/api/v1/jobs")
    set -- $out
    [ "$1" = 200 ] || die "an authenticated GET /api/v1/jobs under the flood: '$out'"
    worst_a=$(echo "$worst_a $2" | awk '{ print ($2 > $1) ? $2 : $1 }')
    i=$((i + 1))
done
awk -v h="$worst_h" -v a="$worst_a" 'BEGIN { exit !(h < 1.0 && a < 1.0) }' ||
    die "answers under the flood took up to ${worst_h}s (/healthz) and ${worst_a}s (GET /jobs); bound 1 s"
touch "$TMP/flood.stop"
wait "$flood"
read -r held refused closed <"$TMP/flood"
[ "$closed" -ge $((held - 512)) ] ||
    die "only $closed of $held idle connections were closed (limit 512)"
n=0
until grep -q "idle connection(s) closed to make room" "$TMP/server.log"; do
    n=$((n + 1))
    [ "$n" -gt 40 ] && die "the server did not log the idle connections it closed"
    sleep 0.1
done
ok "$held idle connections from 10 addresses ($refused refused): /healthz answered in at most ${worst_h}s, an authenticated GET /api/v1/jobs in ${worst_a}s; $closed idle ones closed, oldest first"
echo "test_flood: ok"
