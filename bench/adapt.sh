#!/bin/sh
# adapt.sh - DNA against the three scaling baselines on Fashion-MNIST.
#
#   bench/adapt.sh [BINDIR]      (default build/release/bin, else build/default/bin)
#
# Networks: ResNet-20 and MobileNetV2 at width 0.5. Budgets: 0.5x, 0.75x and
# 1.3x of each network's FLOPs. Methods: dna, uniform_width, uniform_depth
# and compound, every found network retrained from scratch with the same
# recipe and SEEDS seeds. Prints mean +- std of the test top-1 per cell,
# the architectures found (widths and depths), the elastic events of every
# DNA search, and the CPU time spent.
#
# The plan, in three phases of PAR jobs at a time (one BLAS thread each):
#   1. the existing networks: a train job per network (seed 0), which is
#      also the 1.0x row;
#   2. a DNA job per network and budget, started from that train job's
#      weights (init_from, arch init "existing"): search, derivation and
#      retrain (seed 0); every baseline job at every seed; the existing
#      networks at seeds 1..SEEDS-1;
#   3. the architecture each DNA job found, retrained at seeds 1..SEEDS-1.
# The DNA search runs once per network and budget (seed 0) and its network
# is retrained at every seed, as the baselines' networks are.
#
# Knobs (environment), sized for about 50 CPU-minutes on a 2-core machine
# (72 retrains and 6 searches; small batches, so that a few epochs on a
# subset are enough steps to train at all):
#   TRAIN_LIMIT (2000)  training images, every phase (the first N)
#   TEST_LIMIT  (1000)  test images, the same for every run
#   WARMUP (1) SEARCH (2)   DNA epochs: weight-only warm-up, then alternating
#                       (search batch SEARCH_BATCH (64), weight SGD LR -> LR/6)
#   RETRAIN (3)         epochs of every retrain and of the existing networks
#                       (SGD LR (0.05) Nesterov, 1 warm-up epoch, cosine, wd 5e-4,
#                       batch BATCH (32))
#   ARCH_LR (10)        architecture lr (cosine to ARCH_LR/5): a CPU run takes
#                       ~60 architecture steps where the paper's take thousands
#   CHECK_EVERY (8)     steps between elastic checks (settle: the same again)
#   NETS ("resnet20 mbv2") BUDGETS ("0.5 0.75 1.3") SEEDS (3) PAR (2)
#   OUT (bench-out/adapt)   TABLE_ONLY=1 prints the table of an earlier run in OUT
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib.sh"
bench_worker "${1:-}"

TRAIN_LIMIT=${TRAIN_LIMIT:-2000}
TEST_LIMIT=${TEST_LIMIT:-1000}
WARMUP=${WARMUP:-1}
SEARCH=${SEARCH:-2}
RETRAIN=${RETRAIN:-3}
BATCH=${BATCH:-32}
SEARCH_BATCH=${SEARCH_BATCH:-64}
LR=${LR:-0.05}
ARCH_LR=${ARCH_LR:-10}
CHECK_EVERY=${CHECK_EVERY:-8}
NETS=${NETS:-resnet20 mbv2}
BUDGETS=${BUDGETS:-0.5 0.75 1.3}
SEEDS=${SEEDS:-3}
PAR=${PAR:-2}
OUT=${OUT:-$root/bench-out/adapt}
METHODS="dna uniform_width uniform_depth compound"
mkdir -p "$OUT"
export KILN_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

model_of() {
    case "$1" in
        resnet20) echo '{"arch":"resnet_cifar","depth":20,"widths":[16,32,64]}' ;;
        mbv2) echo '{"arch":"mobilenetv2","width_mult":0.5}' ;;
        *) echo "unknown net $1" >&2; exit 2 ;;
    esac
}
DATA="{\"dataset\":\"fashion-mnist\",\"train_limit\":$TRAIN_LIMIT,\"test_limit\":$TEST_LIMIT}"
OPTIM="{\"optimizer\":\"sgd\",\"lr\":$LR,\"weight_decay\":5e-4,\"batch_size\":$BATCH,\"epochs\":$RETRAIN}"
search_min=$(awk -v a="$LR" 'BEGIN { print a / 6 }')
arch_min=$(awk -v a="$ARCH_LR" 'BEGIN { print a / 5 }')
tag() { echo "$1" | tr -d '.'; } # 0.75 -> 075

# spec NAME JSON: writes OUT/NAME.json (not with TABLE_ONLY: those of the run stay)
spec() {
    [ -n "${TABLE_ONLY:-}" ] || printf '%s\n' "$2" > "$OUT/$1.json"
}

bench_runner stop

train_spec() { # NAME SEED MODEL-JSON
    spec "$1" "{\"name\":\"$1\",\"seed\":$2,\"model\":$3,\"data\":$DATA,\"optim\":$OPTIM}"
}

p1=""
p2_dna=""
p2=""
p3=""
for net in $NETS; do
    m=$(model_of "$net")
    s=0
    while [ "$s" -lt "$SEEDS" ]; do
        train_spec "$net-orig-s$s" "$s" "$m"
        if [ "$s" -eq 0 ]; then p1="$p1 $net-orig-s0"; else p2="$p2 $net-orig-s$s"; fi
        s=$((s + 1))
    done
    for b in $BUDGETS; do
        t=$(tag "$b")
        spec "$net-dna$t-s0" "{\"name\":\"$net-dna$t-s0\",\"type\":\"adapt\",\"seed\":0,
\"init_from\":\"$OUT/$net-orig-s0/model.safetensors\",\"model\":$m,\"data\":$DATA,\"optim\":$OPTIM,
\"adapt\":{\"method\":\"dna\",\"target_ratio\":$b,\"warmup_epochs\":$WARMUP,\"search_epochs\":$SEARCH,
\"search\":{\"batch_size\":$SEARCH_BATCH,\"lr\":$LR,\"min_lr\":$search_min},\"arch\":{\"lr\":$ARCH_LR,\"min_lr\":$arch_min,\"init\":\"existing\"},
\"elastic\":{\"check_every\":$CHECK_EVERY,\"settle_steps\":$CHECK_EVERY},\"eval_limit\":$TEST_LIMIT}}"
        p2_dna="$p2_dna $net-dna$t-s0"
        for meth in uniform_width uniform_depth compound; do
            s=0
            while [ "$s" -lt "$SEEDS" ]; do
                n="$net-$meth$t-s$s"
                spec "$n" "{\"name\":\"$n\",\"type\":\"adapt\",\"seed\":$s,\"model\":$m,
\"data\":$DATA,\"optim\":$OPTIM,\"adapt\":{\"method\":\"$meth\",\"target_ratio\":$b}}"
                p2="$p2 $n"
                s=$((s + 1))
            done
        done
        s=1
        while [ "$s" -lt "$SEEDS" ]; do
            p3="$p3 $net-dna$t-s$s"
            s=$((s + 1))
        done
    done
done

echo "== DNA vs uniform_width / uniform_depth / compound on Fashion-MNIST" \
    "($TRAIN_LIMIT train / $TEST_LIMIT test images)"
echo "   nets: $NETS; budgets: $BUDGETS; DNA: $WARMUP warm-up + $SEARCH search epochs," \
    "arch lr $ARCH_LR -> $arch_min, elastic check every $CHECK_EVERY steps;" \
    "retrain $RETRAIN epochs at batch $BATCH, lr $LR; $SEEDS seeds; output in $OUT"
if [ -z "${TABLE_ONLY:-}" ]; then
    t0=$(date +%s)
    # shellcheck disable=SC2086
    bench_phase $p1
    # shellcheck disable=SC2086
    bench_phase $p2_dna $p2
    for n in $p3; do # the DNA architecture, retrained at another seed
        base=$(echo "$n" | sed 's/-s[0-9]*$/-s0/')
        train_spec "$n" "${n##*-s}" "$(cat "$OUT/$base/architecture.json")"
    done
    # shellcheck disable=SC2086
    [ -z "$p3" ] || bench_phase $p3
    echo "wall time: $(($(date +%s) - t0)) s"
fi

python3 - "$OUT" "$SEEDS" "$NETS" "$BUDGETS" <<'PY'
import json, os, statistics, sys
out, seeds = sys.argv[1], int(sys.argv[2])
nets, budgets = sys.argv[3].split(), sys.argv[4].split()
methods = ["dna", "uniform_width", "uniform_depth", "compound"]
tag = lambda b: b.replace(".", "")

def summary(name):
    for line in open(os.path.join(out, name + ".log")):
        if '"event":"finished"' in line:
            return json.loads(line[line.index("{"):])
    raise SystemExit(f"{name}: no summary")

def ms(xs):
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{100 * statistics.mean(xs):6.2f} +- {100 * sd:4.2f}"

def arch_text(rep):
    """depths, and the width of each searched unit (DNA) as kept/existing"""
    a = rep["after"]
    units = rep.get("units")
    if not units:
        return f"depths {a['depths']}"
    ws = " ".join(f"{u['kept']}/{u['existing']}" for u in units)
    return f"depths {a['depths']}, unit widths {ws}"

cpu = 0.0
for f in os.listdir(out):
    if f.endswith(".time"):
        u, s = open(os.path.join(out, f)).read().split()[-2:]
        cpu += float(u) + float(s)

print(f"\n{'net':>8} {'budget':>6} {'method':>14} {'MFLOPs':>8} {'params':>8}  "
      f"{'top-1 mean +- std':>17}  per seed")
for net in nets:
    orig = [summary(f"{net}-orig-s{s}")["test_top1"] for s in range(seeds)]
    o0 = json.load(open(os.path.join(out, f"{net}-dna{tag(budgets[0])}-s0", "report.json")))
    o0 = o0["before"]
    print(f"{net:>8} {'1.0x':>6} {'(existing)':>14} {o0['mflops']:8.3f} "
          f"{o0['params']:8d}  {ms(orig)}  " + " ".join(f"{100*a:.2f}" for a in orig))
    for b in budgets:
        for meth in methods:
            names = [f"{net}-{meth}{tag(b)}-s{s}" for s in range(seeds)]
            accs = [summary(n)["test_top1"] for n in names]
            rep = json.load(open(os.path.join(out, names[0], "report.json")))
            a = rep["after"]
            print(f"{net:>8} {b + 'x':>6} {meth:>14} {a['mflops']:8.3f} {a['params']:8d}  "
                  f"{ms(accs)}  " + " ".join(f"{100*x:.2f}" for x in accs))
    print()

print("DNA minus each baseline, paired by seed (points):")
for net in nets:
    for b in budgets:
        dna = [summary(f"{net}-dna{tag(b)}-s{s}")["test_top1"] for s in range(seeds)]
        parts = []
        for meth in methods[1:]:
            d = [x - summary(f"{net}-{meth}{tag(b)}-s{s}")["test_top1"] for s, x in enumerate(dna)]
            sd = statistics.stdev(d) if len(d) > 1 else 0.0
            parts.append(f"{meth} {100*statistics.mean(d):+.2f} +- {100*sd:.2f}")
        print(f"  {net:>8} {b}x: " + "; ".join(parts))

print("\narchitectures found (seed 0):")
for net in nets:
    rep = json.load(open(os.path.join(out, f"{net}-dna{tag(budgets[0])}-s0", "report.json")))
    print(f"  {net} existing: depths {rep['before']['depths']}, {rep['before']['mflops']:.3f} MFLOPs")
    for b in budgets:
        for meth in methods:
            rep = json.load(open(os.path.join(out, f"{net}-{meth}{tag(b)}-s0", "report.json")))
            extra = ""
            if meth != "dna":
                bl = rep.get("baseline", {})
                extra = (f"  (width x{bl.get('width_multiplier', float('nan')):.3f}, "
                         f"depth x{bl.get('depth_multiplier', float('nan')):.3f})")
            print(f"  {net} {b}x {meth:>14}: {arch_text(rep)}{extra}")

print("\nDNA searches: elastic events, supernet FLOPs, accuracies:")
for net in nets:
    for b in budgets:
        rep = json.load(open(os.path.join(out, f"{net}-dna{tag(b)}-s0", "report.json")))
        el = rep["elastic"]
        kinds = ", ".join(f"{k} {v}" for k, v in el["counts"].items() if k != "total" and v)
        print(f"  {net} {b}x: {el['counts']['total']} events ({kinds or 'none'}); supernet "
              f"{el['supernet_mflops_initial']:.3f} -> {el['supernet_mflops_final']:.3f} MFLOPs; "
              f"existing net top-1 {rep['before']['top1'] or float('nan'):.4f}, found net with "
              f"inherited weights {rep['after']['top1_inherited'] or float('nan'):.4f}")
        for ev in el["events"]:
            k = "channels" if "channels" in ev["before"] else "blocks"
            print(f"      epoch {ev['epoch']:.2f} {ev['kind']} {ev['what']}: "
                  f"{ev['before'][k]} -> {ev['after'][k]} {k}, supernet "
                  f"{ev['supernet_mflops_before']:.3f} -> {ev['supernet_mflops_after']:.3f} MFLOPs")
print(f"\nCPU time of all jobs: {cpu/60:.1f} min")
PY
