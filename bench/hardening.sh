#!/usr/bin/env bash
# The hardening figures of issue 4, each from the bulwark command shown:
#   PGD-AT and TRADES cnn (Fashion-MNIST, L∞ eps 0.1): clean accuracy,
#     PGD-40 robust accuracy on the first $N_PGD test images, AutoAttack
#     (standard) on the first $N_AA;
#   DP-SGD cnn at ε = 3, δ = 1e-5: test accuracy;
#   randomized smoothing: an mlp trained with σ = 0.25 noise, certified on
#     the first $N_CERT test images ($CERT_SAMPLES samples each);
#   a comparison report of the standard cnn and the PGD-AT cnn.
# Models are trained once and kept in $CACHE (bench/results/tmp/models, shared
# with bench/attack.sh); delete them there to retrain. Training them all
# takes about 1.5 hours on 2 cores, the evaluations about 25 minutes. For a
# quick check that it works:
#   CACHE=/tmp/hq AT_EPOCHS=1 DP_EPOCHS=1 SMOOTH_EPOCHS=1 TRAIN_N=3000 N_PGD=100 N_AA=10 N_CERT=10 CERT_SAMPLES=1000 N_CMP=20 bench/hardening.sh
# Writes bench/results/hardening.md (and the raw JSON and reports under
# bench/results/tmp/hardening) and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOEXPERIMENT=simd
AT_EPOCHS=${AT_EPOCHS:-10}
DP_EPOCHS=${DP_EPOCHS:-20}
SMOOTH_EPOCHS=${SMOOTH_EPOCHS:-10}
TRAIN_N=${TRAIN_N:-0}
N_PGD=${N_PGD:-1000}
N_AA=${N_AA:-200}
N_CERT=${N_CERT:-500}
CERT_SAMPLES=${CERT_SAMPLES:-100000}
N_CMP=${N_CMP:-200}
out=bench/results
tmp=$out/tmp/hardening
CACHE=${CACHE:-$out/tmp/models}
mkdir -p "$tmp" "$CACHE"
rm -f "$tmp"/*.json "$tmp"/commands.txt
go build -o bin/bulwark ./cmd/bulwark
b=bin/bulwark

# run NAME CMD...: runs CMD with stdout into $tmp/NAME.json, and records it.
run() {
  local name=$1
  shift
  printf '%s\t%s\n' "$name" "$*" >> "$tmp/commands.txt"
  local t0=$SECONDS
  "$@" > "$tmp/$name.json"
  echo "bench: $name took $((SECONDS - t0))s" >&2
}

# model NAME CMD...: trains NAME into $CACHE/NAME.safetensors with CMD
# (which gets --out) unless it is there already.
model() {
  local name=$1
  shift
  local m="$CACHE/$name.safetensors"
  printf '%s\t%s --out %s\n' "$name" "$*" "$m" >> "$tmp/commands.txt"
  if [[ ! -s $m ]]; then
    echo "bench: training $name..." >&2
    "$@" --out "$m" -q > /dev/null
    rm -f "$m.ckpt"
  fi
}
n=()
[[ $TRAIN_N != 0 ]] && n=(--n "$TRAIN_N")
base=cnn-e5-s1
model $base $b train --data fashion-mnist --arch cnn --epochs 5 --seed 1 "${n[@]}"
model cnn-pgd-at $b train --data fashion-mnist --arch cnn --defense pgd-at --eps 0.1 --epochs "$AT_EPOCHS" --patience 0 --seed 1 "${n[@]}"
model cnn-trades $b train --data fashion-mnist --arch cnn --defense trades --beta 6 --eps 0.1 --epochs "$AT_EPOCHS" --patience 0 --seed 1 "${n[@]}"
model cnn-dp-eps3 $b train --data fashion-mnist --arch cnn --dp --target-epsilon 3 --delta 1e-5 --clip 1 --logical-batch 1024 --epochs "$DP_EPOCHS" --lr 2e-3 --seed 1 "${n[@]}"
model mlp-gaussian-0.25 $b train --data fashion-mnist --arch mlp --defense gaussian --sigma 0.25 --epochs "$SMOOTH_EPOCHS" --patience 0 --seed 1 "${n[@]}"

for m in $base cnn-pgd-at cnn-trades; do
  run "$m-pgd" $b attack --model "$CACHE/$m.safetensors" --data fashion-mnist --attack pgd --eps 0.1 --steps 40 --step-size 0.01 --n "$N_PGD" --json -q
done
for m in cnn-pgd-at cnn-trades; do
  run "$m-aa" $b attack --model "$CACHE/$m.safetensors" --data fashion-mnist --attack autoattack --eps 0.1 --n "$N_AA" --json -q
done
run cnn-dp-eps3-eval $b eval --model "$CACHE/cnn-dp-eps3.safetensors" --data fashion-mnist --json -q
run mlp-gaussian-0.25-certify $b certify --model "$CACHE/mlp-gaussian-0.25.safetensors" --data fashion-mnist --sigma 0.25 --n "$N_CERT" --samples "$CERT_SAMPLES" --json -q
printf '%s\t%s\n' compare "$b assess --model $CACHE/$base.safetensors --compare $CACHE/cnn-pgd-at.safetensors --data fashion-mnist --profile standard --n $N_CMP --out $tmp/compare" >> "$tmp/commands.txt"
t0=$SECONDS
$b assess --model "$CACHE/$base.safetensors" --compare "$CACHE/cnn-pgd-at.safetensors" --data fashion-mnist --profile standard --n "$N_CMP" --out "$tmp/compare" -q > /dev/null
echo "bench: compare took $((SECONDS - t0))s" >&2

/usr/bin/python3 - "$tmp" "$out" "$CACHE" "$base" <<'PY'
import json, struct, subprocess, sys
tmp, out, cache, base = sys.argv[1:5]
j = lambda n: json.load(open(f"{tmp}/{n}.json"))
def meta(name):
    with open(f"{cache}/{name}.safetensors", "rb") as f:
        h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    return json.loads(h["__metadata__"]["bulwark.meta"])["provenance"]
cmds = dict(l.rstrip("\n").split("\t", 1) for l in open(f"{tmp}/commands.txt"))
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
pct = lambda v: f"{100 * v:.1f}%"
L = [f"Machine: {cpu}, {cores} cores. Fashion-MNIST test split; L∞ eps 0.1.", "",
     "| model | clean | PGD-40 robust | AutoAttack robust | training |", "|---|---|---|---|---|"]
for m, label in [(base, "cnn, standard training (5 epochs)"), ("cnn-pgd-at", "cnn, PGD-AT"), ("cnn-trades", "cnn, TRADES β = 6")]:
    p = j(f"{m}-pgd")
    aa = f"{pct(j(f'{m}-aa')['robust_accuracy'])} (first {j(f'{m}-aa')['n']})" if m != base else "–"
    mt = meta(m)
    L.append(f"| {label} | {pct(p['clean_accuracy'])} | {pct(p['robust_accuracy'])} (first {p['n']}) | {aa} | "
             f"{mt['epochs']} epochs, {mt['metrics']['train_seconds'] / 60:.0f} min |")
pr, dpe, dm = meta("cnn-dp-eps3")["privacy"], j("cnn-dp-eps3-eval"), meta("cnn-dp-eps3")
L += ["", f"DP-SGD cnn: test accuracy {pct(dpe['accuracy'])} at (ε = {pr['epsilon']:.2f}, δ = {pr['delta']:g}), {pr['accountant']} accountant, "
      f"noise multiplier {pr['noise_multiplier']:.3f}, clip {pr['clip_norm']:g}, sampling rate {pr['sampling_rate']:.4g}, {pr['steps']} steps "
      f"({dm['epochs']} epochs, {dm['metrics']['train_seconds'] / 60:.0f} min)."]
c = j("mlp-gaussian-0.25-certify")
ca = c["certified_accuracy"]
L += ["", f"Randomized smoothing (mlp trained with σ = 0.25 noise, certified at σ = 0.25) on the first {c['n']} test images, {c['samples']} samples each, α = {c['alpha']}: "
      + ", ".join(f"radius {k}: {pct(ca[k])}" for k in sorted(ca, key=float))
      + f"; abstained {pct(c['abstain_rate'])}; smoothed clean accuracy {pct(c['clean_accuracy'])}; {c['seconds_per_example']:.2f}s per image."]
L += ["", "Commands (the models are trained once into the cache):", "", "```"] + [f"{k}: {v}" for k, v in cmds.items()] + ["```"]
open(f"{out}/hardening.md", "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
