#!/bin/bash
# run.sh BINDIR - `make test-containers`: kiln in containers, for real, with podman.
#
# Installs the engine (engine.sh), builds deploy/Dockerfile from the working tree, makes
# the first run's tokens with deploy/init-secrets.sh, and starts deploy/compose.yaml:
# the server, pool-a (one container, 1 rank) and pool-b (2 ranks, one in each of two
# containers, started through pool-b-agent's sshd). Then, with the CLI from the host
# (BINDIR/kiln):
#   1. a train job (Fashion-MNIST from the read-only /data volume) and a DMCP prune job
#      (2 ranks: on pool-b, across both containers) reach SUCCEEDED; the downloaded
#      weights evaluate, in a container, to the accuracy each job reported;
#   2. `podman stop` of pool-a mid-job: it leaves within its bound with status 0, the
#      attempt ends POOL_STOPPED, the job resumes on pool-b from the checkpoint of the
#      stop step and succeeds, every training-metric step exactly once;
#   3. the same through pool-b-agent, the container of pool-b's remote rank: the job
#      resumes on pool-a;
#   4. `podman restart` of the server while a job runs: no job lost, the pools
#      reconnect (to the server's new address) within the server's restart grace, the
#      job goes on in its first attempt and succeeds, every metric step once.
# Reports the image size, the build and start times. Every step is bounded in time;
# containers, volumes, the network and the image are removed at the end (the engine and
# its base image stay, like any installed package). Ports: free ones (KILN_HTTP_PORT,
# KILN_BROKER_PORT). Needs root (podman rootful).
set -euo pipefail
bin=$(cd "${1:?usage: run.sh BINDIR}" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
KILN_BIN_CLI=$bin/kiln
t_all=$(date +%s)
project=kilnct$$
image=localhost/kiln-ct:$$
work=$(mktemp -d /tmp/kiln-ct-XXXXXX)
compose=(podman-compose -p "$project" -f "$work/compose.yaml")

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "ct: $*"; }
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*" >&2
    for c in server pool-a pool-b pool-b-agent; do
        echo "--- logs of $c" >&2
        timeout 20 podman logs --tail 25 "${project}_${c}_1" >&2 2>&1 || :
    done
    exit 1
}
ctr() { echo "${project}_$1_1"; }

cleanup() {
    set +e
    if [ -f "$work/compose.yaml" ]; then
        timeout 120 "${compose[@]}" down -v -t 5 >"$work/down.log" 2>&1
    fi
    for c in $(timeout 30 podman ps -a -q --filter "label=io.podman.compose.project=$project"); do
        timeout 30 podman rm -f -t 2 "$c" >/dev/null 2>&1
    done
    for v in $(timeout 30 podman volume ls -q --filter "name=${project}_"); do
        timeout 30 podman volume rm -f "$v" >/dev/null 2>&1
    done
    timeout 30 podman network rm -f "${project}_default" >/dev/null 2>&1
    timeout 60 podman rmi -f "$image" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 20000))
        ss -ltn 2>/dev/null | awk '{ print $4 }' | grep ":$p\$" >/dev/null || { echo "$p"; return 0; }
    done
    return 1
}

# ---- the engine and the image -------------------------------------------------------
t=$(now)
timeout 900 bash "$root/tests/containers/engine.sh" >"$work/engine.log" 2>&1 ||
    { tail -20 "$work/engine.log" >&2; fail "engine.sh"; }
t_engine=$(since "$t")
say "$(tail -1 "$work/engine.log") (${t_engine}s)"

t=$(now)
# --layers=false: no intermediate images are left behind; BUILDAH_FORMAT keeps HEALTHCHECK.
(cd "$root" && timeout 1500 podman build --pull=never --layers=false --format docker \
    -f deploy/Dockerfile -t "$image" .) >"$work/build.log" 2>&1 ||
    { tail -30 "$work/build.log" >&2; fail "podman build"; }
t_build=$(since "$t")
# built from the sources, not from objects the host left in build/
grep -q "CC      worker/main.c" "$work/build.log" || fail "the build stage did not compile worker/main.c"
grep -q "CC      worker/nn/conv.c (avx512)" "$work/build.log" ||
    fail "the build stage did not compile the avx512 kernels"
size=$(podman image inspect --format '{{.Size}}' "$image")
size_mb=$((size / 1000000))
[ "$size_mb" -lt 300 ] || fail "the image is ${size_mb} MB (aim: under 300 MB)"
ok "image $image built in ${t_build}s from the working tree: ${size_mb} MB"

# The portable build runs every kernel path the CPU offers; the image runs as kiln.
gen=$(timeout 60 podman run --rm --network none -e KILN_ISA=generic "$image" kiln-worker --version 2>/dev/null) ||
    fail "kiln-worker --version on the generic path"
echo "$gen" | grep -q "kernels generic" || fail "KILN_ISA=generic: $gen"
[ "$(timeout 60 podman run --rm --network none "$image" id -u 2>/dev/null)" = 10001 ] ||
    fail "the image does not run as uid 10001"
hc=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$image")
echo "$hc" | grep -q '"kiln","health"' || fail "the image has no HEALTHCHECK kiln health: $hc"
ok "portable engine (KILN_ISA=generic runs), non-root (uid 10001), HEALTHCHECK kiln health"

# ---- the first run: tokens, then the cluster ------------------------------------------
cp "$root/deploy/compose.yaml" "$work/compose.yaml"
mkdir -p "$work/datasets/fmnist"
cp /usr/share/datasets/fashion-mnist/*.gz "$work/datasets/fmnist/" ||
    fail "Fashion-MNIST is missing on the host (make deps installs dataset-fashion-mnist)"
KILN_IMAGE=$image timeout 120 "$root/deploy/init-secrets.sh" "$work" >"$work/admin.token" \
    2>"$work/init.log" || { cat "$work/init.log" >&2; fail "init-secrets.sh"; }
admin=$(head -1 "$work/admin.token")
[ -n "$admin" ] || fail "init-secrets.sh printed no admin token"
http_port=$(free_port) || fail "no free port"
broker_port=$(free_port) || fail "no free port"
export KILN_IMAGE=$image KILN_HTTP_PORT=$http_port KILN_BROKER_PORT=$broker_port
export KILN_DATASETS=$work/datasets KILN_THREADS=1
url=http://127.0.0.1:$http_port
kiln() { timeout 60 "$KILN_BIN_CLI" --url "$url" --token "$admin" "$@"; }
KILN_JSON() { timeout 60 "$KILN_BIN_CLI" --url "$url" --token "$admin" --json "$@"; }
job() { kiln get "$1"; }
jq_job() { job "$1" | jq -r "$2"; }

t_up=$(now)
timeout 180 "${compose[@]}" up -d >"$work/up.log" 2>&1 ||
    { tail -20 "$work/up.log" >&2; fail "podman-compose up"; }

# ready: the server answers and both pools said hello (pool-b with its 2 ranks)
wait_pools() { # SECONDS -> both pools alive
    local n=0
    while :; do
        w=$(KILN_JSON workers 2>/dev/null || :)
        a=$(echo "$w" | jq -r '[.[] | select(.state != "lost") | "\(.id):\(.ranks)"] | sort | join(",")' 2>/dev/null || :)
        [ "$a" = "pool-a:1,pool-b:2" ] && return 0
        n=$((n + 1))
        [ "$n" -gt $(($1 * 2)) ] && fail "the pools did not both connect within $1 s (workers: $a)"
        sleep 0.5
    done
}
wait_pools 120
t_start=$(since "$t_up")
hosts=$(KILN_JSON workers | jq -r '.[] | select(.id == "pool-b") | .hosts | unique | join(",")')
[ "$hosts" = "pool-b,pool-b-agent" ] || fail "pool-b's ranks run on '$hosts', not on its two containers"
ok "cluster up in ${t_start}s: server, pool-a (1 rank), pool-b (2 ranks on $hosts)"

for c in server pool-a pool-b pool-b-agent; do
    timeout 60 podman healthcheck run "$(ctr "$c")" >/dev/null 2>&1 || fail "the healthcheck of $c fails"
done
if timeout 30 podman exec "$(ctr pool-a)" touch /data/fmnist/x 2>/dev/null; then
    fail "the datasets volume is writable in pool-a"
fi
owner=$(timeout 30 podman exec "$(ctr server)" stat -c %u:%U /var/lib/kiln/data/kiln.db) ||
    fail "no store in the server's data volume"
[ "$owner" = "10001:kiln" ] || fail "the store belongs to $owner"
ok "healthchecks pass (server: kiln health; pools: kiln-pool health); /data read-only; store owned by kiln"

# ---- 1. a train job and a prune job ---------------------------------------------------
FMNIST='"dataset":"fashion-mnist","root":"/data/fmnist"'
cat >"$work/train.json" <<EOF
{"name":"ct-train","seed":1,"model":{"arch":"resnet_cifar","depth":8,"widths":[8,16,32]},
 "data":{$FMNIST,"train_limit":3000,"test_limit":1000},
 "optim":{"lr":0.05,"batch_size":32,"epochs":2},"resources":{"ranks":1}}
EOF
SYN='"dataset":"synthetic","synthetic":{"train":512,"test":256,"classes":4,"channels":1,"size":12}'
cat >"$work/prune.json" <<EOF
{"name":"ct-prune","type":"prune","seed":2,
 "model":{"arch":"resnet_cifar","image_size":12,"in_channels":1,"num_classes":4,"stem":8,
          "stages":[{"width":8,"mids":[8]},{"width":16,"mids":[16]}]},
 "data":{$SYN},"optim":{"lr":0.05,"batch_size":32,"epochs":2},"resources":{"ranks":2},
 "prune":{"method":"dmcp","target_mflops":0.15,"warmup_epochs":1,"search_epochs":1,
          "search":{"batch_size":32},"calib_batches":2}}
EOF
t=$(now)
train=$(kiln submit -q "$work/train.json") || fail "kiln submit train"
prune=$(kiln submit -q "$work/prune.json") || fail "kiln submit prune"
timeout 300 "$KILN_BIN_CLI" --url "$url" --token "$admin" watch "$train" >/dev/null ||
    fail "train job $train: $(jq_job "$train" '.state + " " + .message')"
timeout 300 "$KILN_BIN_CLI" --url "$url" --token "$admin" watch "$prune" >/dev/null ||
    fail "prune job $prune: $(jq_job "$prune" '.state + " " + .message')"
[ "$(jq_job "$prune" '.attempts[-1].pool_id')" = pool-b ] || fail "the prune job did not run on pool-b"
mkdir -p "$work/dl"
kiln download "$train" model.safetensors -o "$work/dl/train.safetensors" >/dev/null || fail "download"
kiln download "$prune" model.safetensors -o "$work/dl/prune.safetensors" >/dev/null || fail "download"
kiln download "$prune" architecture.json -o "$work/dl/prune-arch.json" >/dev/null || fail "download"
evaluate() { # ARGS... -> top1 (kiln-worker eval in a container without network)
    timeout 120 podman run --rm --network none -v "$work/dl:/w:ro" -v "$work/datasets:/data:ro" \
        "$image" kiln-worker eval "$@" 2>/dev/null | jq -r .top1
}
same() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-6) }'; }
got=$(evaluate --weights /w/train.safetensors --data "{$FMNIST,\"test_limit\":1000}")
want=$(jq_job "$train" .result.test_top1)
same "$got" "$want" || fail "train: the weights evaluate to $got, the job reported $want"
got2=$(evaluate --model /w/prune-arch.json --weights /w/prune.safetensors --data "{$SYN}")
want2=$(jq_job "$prune" .result.test_top1)
same "$got2" "$want2" || fail "prune: the weights evaluate to $got2, the job reported $want2"
ok "train and prune jobs SUCCEEDED in $(since "$t")s (prune across pool-b's two containers); weights evaluate to the reported top-1 ($want, $want2)"

# ---- graceful stops -------------------------------------------------------------------
cat >"$work/long.json" <<EOF
{"name":"ct-long","seed":3,"model":{"arch":"resnet_cifar","depth":8,"widths":[16,32,64]},
 "data":{$FMNIST,"train_limit":9000,"test_limit":500},
 "optim":{"lr":0.05,"batch_size":32,"epochs":3},"resources":{"ranks":1},
 "checkpoint":{"every_steps":100}}
EOF

wait_step() { # ID STEP SECONDS: until the job runs past STEP
    local n=0 s
    while :; do
        s=$(jq_job "$1" '.progress.step // 0' 2>/dev/null || echo 0)
        [ "$(jq_job "$1" .state 2>/dev/null)" = RUNNING ] && [ "${s:-0}" -ge "$2" ] && return 0
        n=$((n + 1))
        [ "$n" -gt $(($3 * 5)) ] && fail "job $1 did not run past step $2 within $3 s (at ${s:-?})"
        sleep 0.2
    done
}

# Every train/loss point of the job, by step: each logging step exactly once, no gap.
check_steps() { # ID
    local total spe
    total=$(jq_job "$1" .progress.total_steps)
    spe=$((total / $(job "$1" | jq -r .spec.optim.epochs)))
    kiln metrics "$1" --names train/loss | awk 'NR > 1 { print $2 }' >"$work/steps-$1"
    awk -v total="$total" -v spe="$spe" 'BEGIN { for (s = 1; s <= total; s++)
        if (s % 10 == 0 || s % spe == 0) print s }' >"$work/want-$1"
    sort -n "$work/steps-$1" | cmp -s - "$work/want-$1" ||
        fail "job $1: train/loss steps are not each logging step once ($(sort -n "$work/steps-$1" |
            uniq -d | head -3 | tr '\n' ' ')duplicated; $(comm -13 <(sort "$work/steps-$1") \
            <(sort "$work/want-$1") | head -3 | tr '\n' ' ')missing)"
    # every seq once, and with the points a retry superseded, all of 1..metric_count
    local n dropped bad
    n=$(jq_job "$1" .metric_count)
    dropped=$(jq_job "$1" .metrics_dropped)
    bad=$(KILN_JSON metrics "$1" | jq -r .seq | awk -v n="$n" -v d="$dropped" '
        $1 <= last || $1 > n { print "seq " $1 " after " last; exit }
        { last = $1 } END { if (NR + d != n) print NR " points + " d " dropped, metric_count " n }')
    [ -z "$bad" ] || fail "job $1: metric seqs: $bad"
}

# stop_round NAME CONTAINER FROM TO: the job runs on pool FROM; stopping CONTAINER makes
# it leave; the job must resume on TO from the stop step.
stop_round() {
    local id=$1 victim=$2 from=$3 to=$4
    [ "$(jq_job "$id" .pool_id)" = "$from" ] || fail "job $id runs on $(jq_job "$id" .pool_id), not $from"
    local t0 code stop_s at
    t0=$(now)
    timeout 120 podman stop -t 90 "$(ctr "$victim")" >/dev/null 2>&1 || fail "podman stop $victim"
    stop_s=$(since "$t0")
    code=$(podman inspect --format '{{.State.ExitCode}}' "$(ctr "$victim")")
    [ "$code" = 0 ] || fail "$victim exited with status $code after podman stop (not a clean leave)"
    awk -v s="$stop_s" 'BEGIN { exit !(s < 60) }' || fail "$victim took ${stop_s}s to stop (bound: 60 s)"
    timeout 200 "$KILN_BIN_CLI" --url "$url" --token "$admin" watch "$id" >/dev/null ||
        fail "job $id after the stop of $victim: $(jq_job "$id" '.state + " " + .message')"
    [ "$(jq_job "$id" '.attempts | length')" = 2 ] || fail "job $id has $(jq_job "$id" '.attempts | length') attempts"
    [ "$(jq_job "$id" '.attempts[0].reason')" = POOL_STOPPED ] ||
        fail "attempt 1 of $id ended $(jq_job "$id" '.attempts[0].reason'), not POOL_STOPPED"
    [ "$(jq_job "$id" '.attempts[1].pool_id')" = "$to" ] || fail "attempt 2 of $id did not run on $to"
    at=$(jq_job "$id" '.attempts[0].message' | sed -n 's/.*cancelled at step \([0-9]*\).*/\1/p')
    # the whole log first: under pipefail, grep -q closing the pipe early would fail
    # podman logs (SIGPIPE) and so the check, even when the line is there
    timeout 30 podman logs "$(ctr server)" >"$work/server-$id.log" 2>&1 || :
    grep -q "job $id attempt 2 -> pool $to .*resuming from a checkpoint" "$work/server-$id.log" ||
        fail "attempt 2 of $id did not resume from a checkpoint"
    check_steps "$id"
    ok "podman stop $victim: left in ${stop_s}s (status 0) at step $at; job $id resumed on $to from that step, SUCCEEDED, every metric step once"
}

# 2. through the launcher of a one-container pool
long1=$(kiln submit -q "$work/long.json") || fail "submit"
wait_step "$long1" 80 120
stop_round "$long1" pool-a pool-a pool-b

# 3. through the agent of pool-b's second container: pool-a stays stopped until the job
#    runs on pool-b, then comes back to take it over
sed 's/"epochs":3/"epochs":5/' "$work/long.json" >"$work/longer.json"
long2=$(kiln submit -q "$work/longer.json") || fail "submit"
wait_step "$long2" 80 120
timeout 60 podman start "$(ctr pool-a)" >/dev/null 2>&1 || fail "podman start pool-a"
n=0
until [ "$(KILN_JSON workers | jq -r '.[] | select(.id == "pool-a") | .state')" = idle ]; do
    n=$((n + 1)); [ "$n" -gt 120 ] && fail "pool-a did not come back"; sleep 0.5
done
stop_round "$long2" pool-b-agent pool-b pool-a
timeout 60 podman start "$(ctr pool-b-agent)" >/dev/null 2>&1 || fail "podman start pool-b-agent"
t=$(now)
wait_pools 240
ok "pool-b back with both containers $(since "$t")s after its agent restarted"

# ---- 4. restart the server under a running job ----------------------------------------
sed 's/"epochs":3/"epochs":2/' "$work/long.json" >"$work/mid.json"
mid=$(kiln submit -q "$work/mid.json") || fail "submit"
wait_step "$mid" 40 120
before=$(KILN_JSON list --all | jq -r 'map(.id + " " + .state) | sort | join(",")')
t=$(now)
timeout 120 podman restart -t 30 "$(ctr server)" >/dev/null 2>&1 || fail "podman restart server"
n=0
until kiln health >/dev/null 2>&1; do
    n=$((n + 1)); [ "$n" -gt 120 ] && fail "the server did not answer after its restart"; sleep 0.5
done
t_srv=$(since "$t")
wait_pools 120
t_rec=$(since "$t")
timeout 200 "$KILN_BIN_CLI" --url "$url" --token "$admin" watch "$mid" >/dev/null ||
    fail "job $mid after the server restart: $(jq_job "$mid" '.state + " " + .message')"
after=$(KILN_JSON list --all | jq -r 'map(.id) | sort | join(",")')
[ "$after" = "$(echo "$before" | tr ',' '\n' | cut -d' ' -f1 | sort | paste -sd, -)" ] ||
    fail "the job list changed across the restart: $before -> $after"
for id in $train $prune $long1 $long2; do
    [ "$(jq_job "$id" .state)" = SUCCEEDED ] || fail "job $id is $(jq_job "$id" .state) after the restart"
done
check_steps "$mid"
[ "$(jq_job "$mid" '.attempts | length')" = 1 ] ||
    fail "job $mid was retried across the server restart: $(jq_job "$mid" '.attempts[0].message')"
ok "server restarted (answering after ${t_srv}s, both pools back after ${t_rec}s): all $(echo "$after" | tr ',' '\n' | wc -l) jobs kept, job $mid went on in its first attempt and SUCCEEDED, every metric step once"

say "image ${size_mb} MB; engine set-up ${t_engine}s; image build ${t_build}s; cluster start ${t_start}s; server restart ${t_srv}s, pools reconnected ${t_rec}s; whole test $(($(date +%s) - t_all))s"
echo "containers: 1 passed, 0 failed"
