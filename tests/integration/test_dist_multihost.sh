# test_dist_multihost.sh - one rank on each of two "hosts" over TCP.
#
# Two network namespaces of our own joined by a veth pair (10.231.7.1 and
# .2), each with its own UTS namespace so the hosts have different names.
# mpirun runs in the first; an rsh agent that enters the second namespace
# starts the remote daemon there, as ssh would on a real second machine.
# The job must complete with one rank per host and give the same weights
# as the single-host run.
set -eu
. "$(dirname "$0")/lib.sh"
new_tmp
NS1=kiln_mh1_$$
NS2=kiln_mh2_$$
cleanup_hook() {
    ip netns del "$NS1" 2>/dev/null || true
    ip netns del "$NS2" 2>/dev/null || true
}

if ! ip netns add "$NS1" 2>"$TMP/ns.err"; then
    echo "SKIP: this machine forbids network namespaces: $(cat "$TMP/ns.err")"
    exit 0
fi
ip netns add "$NS2"
ip link add "kv1_$$" type veth peer name "kv2_$$"
ip link set "kv1_$$" netns "$NS1"
ip link set "kv2_$$" netns "$NS2"
ip -n "$NS1" addr add 10.231.7.1/24 dev "kv1_$$"
ip -n "$NS2" addr add 10.231.7.2/24 dev "kv2_$$"
for ns in "$NS1" "$NS2"; do
    ip -n "$ns" link set lo up
done
ip -n "$NS1" link set "kv1_$$" up
ip -n "$NS2" link set "kv2_$$" up

cat > "$TMP/agent.sh" <<AGENT
#!/bin/sh
# rsh agent: \$1 is the host address, the rest the command line to run there.
host=\$1; shift
case "\$host" in
10.231.7.1) ns=$NS1; name=kiln-host-a ;;
10.231.7.2) ns=$NS2; name=kiln-host-b ;;
*) echo "agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" unshare --uts sh -c "hostname \$name; \$*"
AGENT
chmod +x "$TMP/agent.sh"

cat > "$TMP/job.json" <<JSON
{"name":"multihost","seed":7,
 "model":{"arch":"deit","embed_dim":32,"depth":2,"num_heads":2,"patch_size":4,
          "image_size":12,"in_channels":1,"num_classes":4},
 "data":{"dataset":"synthetic","synthetic":{"train":1024,"test":128}},
 "optim":{"optimizer":"sgd","lr":0.05,"batch_size":32,"epochs":1,"max_steps":6}}
JSON
"$WORKER" run "$TMP/job.json" --out "$TMP/single" --no-progress > "$TMP/single.log" 2>&1 ||
    fail "single-host run: $(tail -3 "$TMP/single.log")"

timeout 120 ip netns exec "$NS1" unshare --uts sh -c "hostname kiln-host-a; \
    mpirun --allow-run-as-root -np 2 --host 10.231.7.1:1,10.231.7.2:1 \
    --mca plm_rsh_agent $TMP/agent.sh --mca btl tcp,self \
    --mca btl_tcp_if_include 10.231.7.0/24 --mca oob_tcp_if_include 10.231.7.0/24 \
    $WORKER run $TMP/job.json --out $TMP/multi --no-progress" > "$TMP/multi.log" 2>&1 ||
    fail "two-host run: $(tail -5 "$TMP/multi.log")"
grep -q "rank 0 of 2 on host kiln-host-a" "$TMP/multi.log" || fail "rank 0 not on host a"
grep -q "rank 1 of 2 on host kiln-host-b" "$TMP/multi.log" || fail "rank 1 not on host b"
grep -q '"event":"finished"' "$TMP/multi.log" || fail "the two-host job did not finish"
"$ST_DIFF" "$TMP/single/model.safetensors" "$TMP/multi/model.safetensors" --tol 1e-5 ||
    fail "two-host weights differ from the single-host run"
ok "two hosts over TCP: job completed, one rank per host, weights match the single host"
