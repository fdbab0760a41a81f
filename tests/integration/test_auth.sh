#!/bin/sh
# test_auth.sh - tokens end to end: kiln-server new-token / hash-token, a
# server started with --tokens, the CLI with --token and KILN_TOKEN, 401
# and 403 over curl; and a server with no tokens asked to bind 0.0.0.0,
# which binds loopback only and says so.
set -u
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"

# tokens: one per scope, made by the server's own subcommand
for spec in "viewer read" "ci submit,read" "root admin" "gpu-pool pool"; do
    set -- $spec
    "$SRV" new-token "$1" "$2" >"$TMP/new-$1" || die "new-token $1 $2"
    sed -n 2p "$TMP/new-$1" >>"$TMP/tokens"
done
tok_read=$(sed -n 1p "$TMP/new-viewer")
tok_submit=$(sed -n 1p "$TMP/new-ci")
tok_admin=$(sed -n 1p "$TMP/new-root")
tok_pool=$(sed -n 1p "$TMP/new-gpu-pool")
case "$tok_read" in kiln_*) ;; *) die "new-token printed '$tok_read'" ;; esac
grep -q "$tok_read" "$TMP/tokens" && die "the tokens file holds a token in clear"
# hash-token gives the same hash as the file, from argv and from stdin
h=$("$SRV" hash-token "$tok_read")
grep -q "^viewer read $h\$" "$TMP/tokens" || die "hash-token: $h is not in the tokens file"
[ "$(echo "$tok_read" | "$SRV" hash-token)" = "$h" ] || die "hash-token from stdin differs"
"$SRV" new-token bad fly >/dev/null 2>&1 && die "new-token accepted scope 'fly'"

# a bad tokens file stops the server with the line named
echo "x read sha256:nothex" >"$TMP/bad-tokens"
"$SRV" --http 127.0.0.1:0 --broker 'tcp://127.0.0.1:*' --data-dir "$TMP/bad" \
    --tokens "$TMP/bad-tokens" >"$TMP/bad.log" 2>&1 && die "a bad tokens file was accepted"
grep -q "bad-tokens line 1" "$TMP/bad.log" || die "bad tokens file: $(cat "$TMP/bad.log")"

start_server 0 'tcp://127.0.0.1:*' --tokens "$TMP/tokens"
grep -q "4 access token(s) loaded" "$TMP/server.log" || die "the server did not say it loaded tokens"
cat >"$TMP/job.json" <<'EOF'
{"name": "auth", "model": {"arch": "resnet_cifar", "depth": 8, "widths": [8, 16, 32]},
 "data": {"dataset": "synthetic"}, "optim": {"epochs": 1}, "resources": {"ranks": 1}}
EOF
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code "$URL/api/v1/jobs")" = 401 ] || die "no token: not 401"
[ "$(code -H "Authorization: Bearer nope" "$URL/api/v1/jobs")" = 401 ] || die "bad token: not 401"
[ "$(code -H "Authorization: Bearer $tok_read" "$URL/api/v1/jobs")" = 200 ] || die "read: GET"
[ "$(code -H "Authorization: Bearer $tok_read" -H 'Content-Type: application/json' \
    --data-binary @"$TMP/job.json" "$URL/api/v1/jobs")" = 403 ] || die "read: POST not 403"
[ "$(code "$URL/healthz")" = 200 ] || die "healthz needs no token"
[ "$(code "$URL/metrics")" = 401 ] || die "/metrics without a token: not 401"

# the CLI: no token -> one clear line; --token and KILN_TOKEN work
err=$(KILN_URL=$URL "$CLI" list 2>&1) && die "kiln list without a token succeeded"
case "$err" in *UNAUTHENTICATED*) ;; *) die "kiln without a token: $err" ;; esac
id=$(KILN_URL=$URL "$CLI" --token "$tok_submit" submit -q "$TMP/job.json") || die "kiln --token submit"
KILN_URL=$URL KILN_TOKEN=$tok_read "$CLI" get "$id" >/dev/null || die "KILN_TOKEN get"
KILN_URL=$URL KILN_TOKEN=$tok_read "$CLI" list --owner ci | grep -q "$id" || die "list --owner ci misses $id"
KILN_URL=$URL KILN_TOKEN=$tok_read "$CLI" list --owner root | grep -q "$id" && die "list --owner root shows ci's job"
echo "$tok_read" >"$TMP/read.token"
KILN_URL=$URL "$CLI" --token-file "$TMP/read.token" get "$id" >/dev/null || die "--token-file get"
err=$(KILN_URL=$URL "$CLI" --token-file "$TMP/none.token" get "$id" 2>&1) && die "a missing token file worked"
case "$err" in *"--token-file"*none.token*) ;; *) die "missing token file: $err" ;; esac
err=$(KILN_URL=$URL KILN_TOKEN=$tok_read "$CLI" cancel "$id" 2>&1) && die "read token cancelled"
case "$err" in *PERMISSION_DENIED*submit*) ;; *) die "cancel with read: $err" ;; esac
KILN_URL=$URL KILN_TOKEN=$tok_submit "$CLI" cancel "$id" >/dev/null || die "submit token cancel"
[ "$(code -X DELETE -H "Authorization: Bearer $tok_read" "$URL/api/v1/jobs/$id")" = 403 ] ||
    die "read token deleted a job"
[ "$(code -X DELETE -H "Authorization: Bearer $tok_admin" "$URL/api/v1/jobs/$id")" = 204 ] ||
    die "admin could not delete"
ok "tokens: hashed in the file, 401 without, 403 without the scope, CLI --token, --token-file and KILN_TOKEN"

# pools: without a token, or with one lacking the pool scope, they cannot
# join; with a pool token they join and run jobs
workers() { curl -s -H "Authorization: Bearer $tok_read" "$URL/api/v1/workers" | $JQ -r '[.workers[].id] | join(",")'; }
"$KILN_BIN/kiln-testpool" --connect "$EP" --pool-id no-token --heartbeat-ms 200 \
    >>"$TMP/pool-no-token.log" 2>&1 &
POOLS="$POOLS $!"
"$KILN_BIN/kiln-testpool" --connect "$EP" --pool-id read-token --token "$tok_read" \
    --heartbeat-ms 200 >>"$TMP/pool-read-token.log" 2>&1 &
POOLS="$POOLS $!"
sleep 1.5
[ -z "$(workers)" ] || die "pools joined without a pool token: $(workers)"
grep -q "pool 'read-token' from .* refused: its token lacks the pool scope" "$TMP/server.log" ||
    die "no log line for the pool with a read token"
grep -q "needs a pool token" "$TMP/pool-no-token.log" || die "the pool without a token does not say why"
KILN_TOKEN=$tok_pool "$KILN_BIN/kiln-testpool" --connect "$EP" --pool-id good --ranks 1 \
    --heartbeat-ms 200 >>"$TMP/pool-good.log" 2>&1 &
POOLS="$POOLS $!"
id=$(KILN_URL=$URL KILN_TOKEN=$tok_submit "$CLI" submit -q "$TMP/job.json") || die "submit"
i=0
until [ "$(curl -s -H "Authorization: Bearer $tok_read" "$URL/api/v1/jobs/$id" | $JQ -r .state)" = SUCCEEDED ]; do
    i=$((i + 1)); [ "$i" -gt 100 ] && die "the job did not run on the pool with a pool token"; sleep 0.1
done
[ "$(workers)" = good ] || die "workers: $(workers)"
ok "pools: refused without a token and with a read token, joined with a pool token and ran a job"
kill9_server

# no tokens: asked for 0.0.0.0, it binds loopback only and says so
rm -f "$TMP/ports"
"$SRV" --http 0.0.0.0:0 --broker 'tcp://*:0' --data-dir "$TMP/open" --port-file "$TMP/ports" \
    >"$TMP/open.log" 2>&1 &
SERVER=$!
i=0
while [ ! -s "$TMP/ports" ]; do
    i=$((i + 1)); [ "$i" -gt 200 ] && die "open server did not start"; sleep 0.05
done
port=$(cut -d' ' -f1 "$TMP/ports")
ep=$(cut -d' ' -f2 "$TMP/ports")
grep -q "HTTP binds 127.0.0.1 instead of 0.0.0.0" "$TMP/open.log" || die "no word about HTTP binding"
grep -q "listen on loopback only" "$TMP/open.log" || die "no word about loopback"
case "$ep" in tcp://127.0.0.1:*) ;; *) die "the pool socket bound $ep" ;; esac
ss -ltnH "sport = :$port" | awk '{print $4}' >"$TMP/listen"
[ "$(cat "$TMP/listen")" = "127.0.0.1:$port" ] || die "HTTP listens on $(cat "$TMP/listen")"
[ "$(code "http://127.0.0.1:$port/api/v1/jobs")" = 200 ] || die "open server refused a request"
ok "no tokens: asked for 0.0.0.0, bound 127.0.0.1:$port and $ep, and said so"
kill -TERM "$SERVER"
wait "$SERVER"
SERVER=""
echo "test_auth: ok"
