#!/bin/sh
# adapt_mobile.sh - DNA on its own ground: MobileNetV3 and EfficientNet bases, an elastic
# space that must stretch, and retrains long enough for capacity to matter.
#
#   bench/adapt_mobile.sh [BINDIR]      (default build/release/bin, else build/default/bin)
#
# bench/adapt.sh's sibling for issue 18 (its results: bench/adapt.md, second part).
# Bases (CIFAR stems, on Fashion-MNIST 28x28):
#   mbv3s    MobileNetV3-Small, torchvision's widths, stride-1 stem
#   effnet   EfficientNet-B0's family at width 0.5, depth 0.5 (B0 itself trains at
#            ~320 img/s on one core: three seeds of six methods are out of a two-hour budget)
# Budgets: 0.5x and 1.5x of each base's FLOPs. Methods:
#   dna          DNA (arch init "existing", from the trained base); at 1.5x with
#                window.max 1.0, so that only the elastic space's expansion reaches the
#                target (the initial supernet is the base itself)
#   dna_frozen   the same with elastic.enabled false: at 1.5x the target lies outside the
#                space and the job must be refused; at 0.5x it runs in the initial window
#   dna_width    DNA with the depth chains off (adapt.search_depth false): DMCP-style
#   uniform_width, uniform_depth, compound   the scaling rules
# Every found network (and the base itself) is trained from scratch by the same recipe on
# the full training set at SEEDS seeds; the DNA searches run once (seed 0) on the first
# SEARCH_LIMIT images and their networks are retrained like the baselines'.
#
# Knobs (environment), sized for about two CPU-hours on a 2-core machine:
#   EPOCHS (2)          retrain epochs on all 60,000 images (SGD LR (0.05) Nesterov, 1
#                       warm-up epoch, cosine, wd 5e-4, batch BATCH (64))
#   SEARCH_LIMIT (10000) WARMUP (1) SEARCH (2)   the DNA searches' images and epochs
#   ARCH_LR (10) CHECK_EVERY (10)   architecture lr (cosine to /5); elastic check period
#   NETS ("mbv3s effnet") BUDGETS ("0.5 1.5") SEEDS (3) PAR (2) TRAIN_LIMIT (0: all)
#   OUT (bench-out/adapt_mobile)    TABLE_ONLY=1 prints the table of an earlier run in OUT
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib.sh"
bench_worker "${1:-}"

EPOCHS=${EPOCHS:-2}
BATCH=${BATCH:-64}
LR=${LR:-0.05}
SEARCH_LIMIT=${SEARCH_LIMIT:-10000}
WARMUP=${WARMUP:-1}
SEARCH=${SEARCH:-2}
ARCH_LR=${ARCH_LR:-10}
CHECK_EVERY=${CHECK_EVERY:-10}
NETS=${NETS:-mbv3s effnet}
BUDGETS=${BUDGETS:-0.5 1.5}
SEEDS=${SEEDS:-3}
PAR=${PAR:-2}
OUT=${OUT:-$root/bench-out/adapt_mobile}
mkdir -p "$OUT"
export KILN_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

model_of() {
    case "$1" in
        mbv3s) echo '{"arch":"mobilenetv3","variant":"small","cifar":true,"dropout":0.1}' ;;
        effnet) echo '{"arch":"efficientnet","width_mult":0.5,"depth_mult":0.5,"cifar":true,"dropout":0.1,"drop_path":0.1}' ;;
        *) echo "unknown net $1" >&2; exit 2 ;;
    esac
}
TRAIN_LIMIT=${TRAIN_LIMIT:-0} # 0: all 60,000 (a smaller value for a quick trial run)
if [ "$TRAIN_LIMIT" -gt 0 ]; then
    DATA="{\"dataset\":\"fashion-mnist\",\"train_limit\":$TRAIN_LIMIT}"
else
    DATA='{"dataset":"fashion-mnist"}'
fi
SDATA="{\"dataset\":\"fashion-mnist\",\"train_limit\":$SEARCH_LIMIT,\"test_limit\":2000}"
OPTIM="{\"optimizer\":\"sgd\",\"lr\":$LR,\"weight_decay\":5e-4,\"batch_size\":$BATCH,\"epochs\":$EPOCHS}"
SOPTIM="{\"optimizer\":\"sgd\",\"lr\":$LR,\"weight_decay\":5e-4,\"batch_size\":$BATCH,\"epochs\":1}"
search_min=$(awk -v a="$LR" 'BEGIN { print a / 6 }')
arch_min=$(awk -v a="$ARCH_LR" 'BEGIN { print a / 5 }')
tag() { echo "$1" | tr -d '.'; } # 1.5 -> 15

spec() { # NAME JSON (not with TABLE_ONLY: the run's specs stay)
    [ -n "${TABLE_ONLY:-}" ] || printf '%s\n' "$2" > "$OUT/$1.json"
}

# a job refused or failed leaves NAME.failed (the table shows it); the run goes on
bench_runner keep

train_spec() { # NAME SEED MODEL-JSON
    spec "$1" "{\"name\":\"$1\",\"seed\":$2,\"model\":$3,\"data\":$DATA,\"optim\":$OPTIM}"
}

dna_spec() { # NAME NET MODEL BUDGET WINDOW-MAX ELASTIC SEARCH-DEPTH
    spec "$1" "{\"name\":\"$1\",\"type\":\"adapt\",\"seed\":0,
\"init_from\":\"$OUT/$2-orig-s0/model.safetensors\",\"model\":$3,\"data\":$SDATA,\"optim\":$SOPTIM,
\"adapt\":{\"method\":\"dna\",\"target_ratio\":$4,\"window\":{\"min\":0.25,\"max\":$5},
\"warmup_epochs\":$WARMUP,\"search_epochs\":$SEARCH,
\"search\":{\"batch_size\":$BATCH,\"lr\":$LR,\"min_lr\":$search_min},
\"arch\":{\"lr\":$ARCH_LR,\"min_lr\":$arch_min,\"init\":\"existing\"},
\"elastic\":{\"enabled\":$6,\"check_every\":$CHECK_EVERY,\"settle_steps\":$CHECK_EVERY},
\"search_depth\":$7,\"eval_limit\":2000}}"
}

p1=""
p2=""
searches=""
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
        wmax=1.5
        [ "$(awk -v b="$b" 'BEGIN { print (b > 1) }')" = 1 ] && wmax=1.0
        dna_spec "$net-dna$t-search" "$net" "$m" "$b" "$wmax" true true
        dna_spec "$net-dna_frozen$t-search" "$net" "$m" "$b" "$wmax" false true
        dna_spec "$net-dna_width$t-search" "$net" "$m" "$b" "$wmax" true false
        searches="$searches $net-dna$t-search $net-dna_frozen$t-search $net-dna_width$t-search"
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
    done
done

echo "== DNA on MobileNetV3-Small and EfficientNet (w0.5 d0.5), Fashion-MNIST, budgets $BUDGETS"
echo "   retrain $EPOCHS epochs x 60000 images, batch $BATCH, lr $LR; searches on $SEARCH_LIMIT" \
    "images ($WARMUP + $SEARCH epochs, arch lr $ARCH_LR -> $arch_min, elastic check every" \
    "$CHECK_EVERY steps); $SEEDS seeds; output in $OUT"
if [ -z "${TABLE_ONLY:-}" ]; then
    t0=$(date +%s)
    # shellcheck disable=SC2086
    bench_phase $p1
    # shellcheck disable=SC2086
    bench_phase $searches $p2
    p3=""
    for n in $searches; do # every architecture a search found, retrained at every seed
        [ -f "$OUT/$n/architecture.json" ] || continue
        base=${n%-search}
        s=0
        while [ "$s" -lt "$SEEDS" ]; do
            train_spec "$base-s$s" "$s" "$(cat "$OUT/$n/architecture.json")"
            p3="$p3 $base-s$s"
            s=$((s + 1))
        done
    done
    # shellcheck disable=SC2086
    [ -z "$p3" ] || bench_phase $p3
    echo "wall time: $(($(date +%s) - t0)) s"
fi

python3 - "$OUT" "$SEEDS" "$NETS" "$BUDGETS" <<'PY'
import json, os, statistics, sys
out, seeds = sys.argv[1], int(sys.argv[2])
nets, budgets = sys.argv[3].split(), sys.argv[4].split()
methods = ["dna", "dna_frozen", "dna_width", "uniform_width", "uniform_depth", "compound"]
searched = methods[:3]
tag = lambda b: b.replace(".", "")

def summary(name):
    p = os.path.join(out, name + ".log")
    if not os.path.exists(p):
        return None
    for line in open(p):
        if '"event":"finished"' in line:
            return json.loads(line[line.index("{"):])
    return None

def failure(name):
    p = os.path.join(out, name + ".failed")
    return open(p).read().strip().splitlines()[-1][:150] if os.path.exists(p) else None

def ms(xs):
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{100 * statistics.mean(xs):6.2f} +- {100 * sd:4.2f}"

cpu = 0.0
for f in os.listdir(out):
    if f.endswith(".time"):
        u, s = open(os.path.join(out, f)).read().split()[-2:]
        cpu += float(u) + float(s)

acc = {}
print(f"\n{'net':>7} {'budget':>6} {'method':>14} {'MFLOPs':>8} {'params':>8}  "
      f"{'top-1 mean +- std':>17}  per seed")
for net in nets:
    orig = [summary(f"{net}-orig-s{s}") for s in range(seeds)]
    accs = [o["test_top1"] for o in orig if o]
    acc[(net, "1.0", "orig")] = accs
    o0 = json.load(open(os.path.join(out, f"{net}-orig-s0", "report.json"))) \
        if os.path.exists(os.path.join(out, f"{net}-orig-s0", "report.json")) else None
    print(f"{net:>7} {'1.0x':>6} {'(base)':>14} {'':>8} {'':>8}  {ms(accs) if accs else '':>17}  "
          + " ".join(f"{100*a:.2f}" for a in accs))
    for b in budgets:
        for meth in methods:
            if meth in searched:
                fail = failure(f"{net}-{meth}{tag(b)}-search")
                if fail:
                    print(f"{net:>7} {b + 'x':>6} {meth:>14}  refused / failed: {fail}")
                    continue
                names = [f"{net}-{meth}{tag(b)}-s{s}" for s in range(seeds)]
                arch = os.path.join(out, f"{net}-{meth}{tag(b)}-search", "report.json")
            else:
                names = [f"{net}-{meth}{tag(b)}-s{s}" for s in range(seeds)]
                arch = os.path.join(out, names[0], "report.json")
            sums = [summary(n) for n in names]
            xs = [x["test_top1"] for x in sums if x]
            acc[(net, b, meth)] = xs
            a = json.load(open(arch))["after"] if os.path.exists(arch) else {}
            print(f"{net:>7} {b + 'x':>6} {meth:>14} {a.get('mflops', float('nan')):8.3f} "
                  f"{a.get('params', 0):8d}  {ms(xs) if xs else '':>17}  "
                  + " ".join(f"{100*x:.2f}" for x in xs))
    print()

print("DNA minus each other method, paired by seed (points, mean +- std of the differences):")
for net in nets:
    for b in budgets:
        dna = acc.get((net, b, "dna"), [])
        parts = []
        for meth in methods[1:]:
            other = acc.get((net, b, meth), [])
            if len(dna) == seeds and len(other) == seeds:
                d = [x - y for x, y in zip(dna, other)]
                sd = statistics.stdev(d) if len(d) > 1 else 0.0
                parts.append(f"{meth} {100*statistics.mean(d):+.2f} +- {100*sd:.2f}")
        print(f"  {net:>7} {b}x: " + ("; ".join(parts) or "(incomplete)"))
print("\nthe base against its 0.5x derivatives (paired by seed, points):")
for net in nets:
    base = acc.get((net, "1.0", "orig"), [])
    for meth in methods:
        other = acc.get((net, "0.5", meth), [])
        if len(base) == seeds and len(other) == seeds:
            d = [x - y for x, y in zip(base, other)]
            print(f"  {net:>7} base - {meth:>14} 0.5x: {100*statistics.mean(d):+.2f} "
                  f"+- {100*(statistics.stdev(d) if len(d) > 1 else 0):.2f}")

print("\narchitectures (depths; DNA searches: widths kept/existing per unit):")
for net in nets:
    for b in budgets:
        for meth in methods:
            p = os.path.join(out, f"{net}-{meth}{tag(b)}-" + ("search" if meth in searched else "s0"),
                             "report.json")
            if not os.path.exists(p):
                continue
            rep = json.load(open(p))
            line = f"  {net} {b}x {meth:>14}: depths {rep['before']['depths']} -> {rep['after']['depths']}"
            if meth not in searched:
                bl = rep.get("baseline", {})
                line += (f" (width x{bl.get('width_multiplier', float('nan')):.3f}, "
                         f"depth x{bl.get('depth_multiplier', float('nan')):.3f})")
            print(line)

print("\nelastic events of the DNA searches (every event, as elastic.json has it):")
for net in nets:
    for b in budgets:
        for meth in searched:
            p = os.path.join(out, f"{net}-{meth}{tag(b)}-search", "elastic.json")
            if not os.path.exists(p):
                continue
            el = json.load(open(p))
            kinds = ", ".join(f"{k} {v}" for k, v in el["counts"].items() if k != "total" and v)
            print(f"  {net} {b}x {meth}: {el['counts']['total']} events ({kinds or 'none'}); "
                  f"supernet {el['supernet_mflops_initial']:.3f} -> "
                  f"{el['supernet_mflops_final']:.3f} MFLOPs")
print(f"\nCPU time of all jobs: {cpu/3600:.2f} CPU-hours")
PY
