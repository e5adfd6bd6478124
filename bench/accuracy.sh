#!/usr/bin/env bash
# Accuracy with the default settings of `bulwark train` (5 epochs, Adam 1e-3,
# cosine schedule, batch 128, 10% validation, seed 1) for cnn and mlp on
# Fashion-MNIST, test split. Writes bench/results/accuracy.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out/tmp"
make -s build
{
  echo "| arch | epochs | train wall time (s) | test accuracy | test loss | ECE | engine |"
  echo "|---|---|---|---|---|---|---|"
  for a in cnn mlp; do
    m="$out/tmp/$a.safetensors"
    rm -f "$m" "$m.ckpt"
    t0=$(date +%s.%N)
    bin/bulwark train --data fashion-mnist --arch "$a" --seed 1 --out "$m" --json > "$out/tmp/$a.train.json"
    t1=$(date +%s.%N)
    bin/bulwark eval --model "$m" --data fashion-mnist --split test --json > "$out/tmp/$a.eval.json"
    /usr/bin/python3 - "$a" "$out/tmp" "$t0" "$t1" <<'PY'
import json, sys
a, d, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
t = json.load(open(f"{d}/{a}.train.json")); e = json.load(open(f"{d}/{a}.eval.json"))
print(f"| {a} | {len(t['epochs'])} | {t1 - t0:.1f} | {e['accuracy']:.4f} | {e['loss']:.4f} | {e['ece']:.4f} | {t['engine']} |")
PY
  done
} | tee "$out/accuracy.md"
