#!/bin/sh
# test_tls.sh - HTTPS end to end: kiln-server --tls-cert/--tls-key (libmicrohttpd's
# GnuTLS) with a CA and certificates made here by openssl; the CLI verifying the
# server with --cacert and KILN_CACERT, an event stream (watch) and a download
# over TLS; and the refusals, each with a message that says what to do: an
# unknown CA, plain HTTP to the TLS port, an http:// URL, a certificate without
# its key, and a file that is not a certificate.
set -u
. "$(dirname "$0")/lib.sh"
new_tmp
. "$(dirname "$0")/service.sh"

command -v openssl >/dev/null || die "openssl is needed (make deps installs it)"

# a CA, a server certificate for 127.0.0.1 signed by it, and a second CA that
# signed nothing here
mkca() { # NAME
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=kiln test $1" -keyout "$TMP/$1.key" -out "$TMP/$1.pem" 2>/dev/null ||
        die "openssl: CA $1"
}
mkca ca
mkca other
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$TMP/server.key" -out "$TMP/server.csr" 2>/dev/null || die "openssl: csr"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$TMP/san.ext"
openssl x509 -req -in "$TMP/server.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" \
    -CAcreateserial -days 2 -extfile "$TMP/san.ext" -out "$TMP/server.pem" 2>/dev/null ||
    die "openssl: sign"

# refused configurations stop the server at once with a message naming the problem
"$SRV" --http 127.0.0.1:0 --broker 'tcp://127.0.0.1:*' --data-dir "$TMP/bad1" \
    --tls-cert "$TMP/server.pem" >"$TMP/bad1.log" 2>&1 && die "a certificate without its key started"
grep -q -- "--tls-cert and --tls-key go together" "$TMP/bad1.log" || die "no key: $(cat "$TMP/bad1.log")"
echo "not a certificate" >"$TMP/junk.pem"
timeout 10 "$SRV" --http 127.0.0.1:0 --broker 'tcp://127.0.0.1:*' --data-dir "$TMP/bad2" \
    --tls-cert "$TMP/junk.pem" --tls-key "$TMP/server.key" >"$TMP/bad2.log" 2>&1 &&
    die "a junk certificate started"
grep -q "cannot serve HTTPS" "$TMP/bad2.log" || die "junk certificate: $(cat "$TMP/bad2.log")"
timeout 10 "$SRV" --http 127.0.0.1:0 --broker 'tcp://127.0.0.1:*' --data-dir "$TMP/bad3" \
    --tls-cert "$TMP/missing.pem" --tls-key "$TMP/server.key" >"$TMP/bad3.log" 2>&1 &&
    die "a missing certificate started"
grep -q "TLS: cannot open .*missing.pem" "$TMP/bad3.log" || die "missing file: $(cat "$TMP/bad3.log")"
ok "refused: a certificate without its key, a junk certificate, a missing file"

make_tokens
tok=$CI_TOKEN
start_server 0 'tcp://127.0.0.1:*' --tokens "$TMP/tokens" \
    --tls-cert "$TMP/server.pem" --tls-key "$TMP/server.key"
URL="https://127.0.0.1:$PORT"
grep -q "listening on https://" "$TMP/server.log" || die "the server does not say it serves HTTPS"

code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }
[ "$(code --cacert "$TMP/ca.pem" "$URL/healthz")" = 200 ] || die "https /healthz with the CA"
[ "$(code --cacert "$TMP/ca.pem" -H "Authorization: Bearer $tok" "$URL/api/v1/jobs")" = 200 ] ||
    die "https GET /jobs with the CA and a token"
status=0
curl -s -o /dev/null --max-time 10 "$URL/healthz" || status=$?
[ "$status" -eq 60 ] || die "curl without the CA: exit $status, not 60 (certificate not verified)"
status=0
curl -s -o /dev/null --max-time 10 --cacert "$TMP/other.pem" "$URL/healthz" || status=$?
[ "$status" -eq 60 ] || die "curl with another CA: exit $status, not 60"
[ "$(code "http://127.0.0.1:$PORT/healthz")" != 200 ] || die "plain HTTP was answered on the TLS port"
ok "curl: https verifies against the CA; no CA, another CA and plain HTTP get nothing"

# the CLI
err=$("$CLI" --url "$URL" --token "$tok" list 2>&1) && die "kiln without --cacert verified"
case "$err" in *"--cacert"*) ;; *) die "kiln without --cacert: $err" ;; esac
err=$("$CLI" --url "$URL" --token "$tok" --cacert "$TMP/other.pem" list 2>&1) &&
    die "kiln with another CA verified"
case "$err" in *"does not verify"*) ;; *) die "kiln with another CA: $err" ;; esac
err=$("$CLI" --url "http://127.0.0.1:$PORT" --token "$tok" list 2>&1) && die "kiln over http worked"
case "$err" in *"https://"*) ;; *) die "kiln with an http:// URL: $err" ;; esac
ok "kiln: no CA, another CA and an http:// URL are refused, each saying what to do"

cat >"$TMP/job.json" <<'JOB'
{"name": "tls", "model": {"arch": "resnet_cifar", "depth": 8, "widths": [8, 16, 32]},
 "data": {"dataset": "synthetic", "synthetic": {"train": 256, "test": 64}},
 "optim": {"epochs": 1, "batch_size": 32}, "resources": {"ranks": 1}}
JOB
"$CLI" --url "$URL" --token "$tok" --cacert "$TMP/ca.pem" submit --dry-run "$TMP/job.json" \
    >/dev/null || die "kiln submit --dry-run over https"
id=$("$CLI" --url "$URL" --token "$tok" --cacert "$TMP/ca.pem" submit -q "$TMP/job.json") ||
    die "kiln submit over https"
# the pool's token from a file, off the command line where ps shows it
OMP_NUM_THREADS=1 mpirun --oversubscribe --mca btl self,tcp -np 1 \
    "$KILN_BIN/kiln-worker" --connect "$EP" --pool-id pool-a --work-dir "$TMP/work-a" \
    --token-file "$TMP/gpu.token" >>"$TMP/pool-a.log" 2>&1 &
POOLS="$POOLS $!"
KILN_URL=$URL KILN_TOKEN=$tok KILN_CACERT=$TMP/ca.pem timeout 120 "$CLI" watch "$id" \
    >"$TMP/watch.out" 2>&1 || die "kiln watch over https: $(tail -3 "$TMP/watch.out")"
KILN_URL=$URL KILN_TOKEN=$tok KILN_CACERT=$TMP/ca.pem "$CLI" download "$id" model.safetensors \
    -o "$TMP/model.safetensors" || die "kiln download over https"
[ -s "$TMP/model.safetensors" ] || die "the download is empty"
st=$(KILN_URL=$URL KILN_TOKEN=$tok KILN_CACERT=$TMP/ca.pem "$CLI" --json get "$id" | jq -r .state)
[ "$st" = SUCCEEDED ] || die "job $id is $st"
ok "kiln over https (KILN_CACERT): submit, watch (event stream) to SUCCEEDED, download"
echo "test_tls: ok"
