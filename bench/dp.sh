#!/usr/bin/env bash
# DP-SGD's overhead: the time of a DP-SGD step divided by the time of a
# normal training step for the same model and batch (256 of 28x28x1, Adam),
# bulwark against PyTorch in the same run on this machine.
#
#   bulwark: `go test ./defense/dpsgd -bench Step` (blas engine): train_step,
#            dp_step (Poisson-free fixed batch: gather, per-example clipping,
#            noise, Adam), and the per-layer, secure-noise and
#            Poisson-sampled variants; -count $COUNT.
#   PyTorch: bench/torch_dp.py: train_step, dp_step_vmap (torch.func
#            per-example gradients, the vectorised form), dp_step_loop (one
#            backward pass per example); run $COUNT times.
#
# Every figure is the median over the repeats. Writes bench/results/dp.md
# and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOEXPERIMENT=simd
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-2s}
out=bench/results
mkdir -p "$out/tmp"

echo "bench: go DP-SGD steps ($COUNT x $BENCHTIME each)..." >&2
go test ./defense/dpsgd -run '^$' -bench 'Step/' -benchtime "$BENCHTIME" -count "$COUNT" > "$out/tmp/dp-go.txt"
echo "bench: pytorch DP-SGD steps ($COUNT runs)..." >&2
: > "$out/tmp/dp-torch.txt"
for i in $(seq "$COUNT"); do
  (cd bench && OPENBLAS_NUM_THREADS=1 /usr/bin/python3 torch_dp.py 2) >> "$out/tmp/dp-torch.txt"
done

/usr/bin/python3 - "$out" <<'PY'
import re, statistics, subprocess, sys
out = sys.argv[1]
go = {}
for line in open(f"{out}/tmp/dp-go.txt"):
    m = re.match(r"BenchmarkStep/blas/(mlp|cnn)/(\w+)-\d+\s+\d+\s+([\d.]+) ns/op", line)
    if m:
        go.setdefault((m[1], m[2]), []).append(float(m[3]) / 1e6)
go = {k: statistics.median(v) for k, v in go.items()}
torch = {}
for line in open(f"{out}/tmp/dp-torch.txt"):
    a, w, ms, _ = line.split()
    torch.setdefault((a, w), []).append(float(ms))
torch = {k: statistics.median(v) for k, v in torch.items()}
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
import torch as T
f = lambda v: f"{v:.1f}" if v is not None else "n/a"
lines = [f"Machine: {cpu}, {cores} cores; PyTorch {T.__version__} (Debian python3-torch, torch.set_num_threads(2)); "
         f"batch 256 of 28x28x1, Adam, clip 1, noise multiplier 1; medians of repeated runs (ms per step).", "",
         "| model | step | bulwark ms | ÷ bulwark train step | PyTorch ms | ÷ PyTorch train step |",
         "|---|---|---|---|---|---|"]
rows = [("train_step", "train_step", "normal training step"),
        ("dp_step", "dp_step_vmap", "DP-SGD step (bulwark: batched per-example norms; PyTorch: torch.func vmap)"),
        ("dp_step_per_layer", None, "DP-SGD, per-layer clipping"),
        ("dp_step_secure", None, "DP-SGD, CSPRNG noise"),
        ("dp_step_poisson", None, "DP-SGD, Poisson-sampled batch (q·N = 256)"),
        (None, "dp_step_loop", "DP-SGD, one backward pass per example (PyTorch)")]
for a in ["mlp", "cnn"]:
    bt, tt = go.get((a, "train_step")), torch.get((a, "train_step"))
    for gk, tk, label in rows:
        b = go.get((a, gk)) if gk else None
        t = torch.get((a, tk)) if tk else None
        rb = f"{b / bt:.2f}x" if b and bt else ""
        rt = f"{t / tt:.2f}x" if t and tt else ""
        lines.append(f"| {a} | {label} | {f(b) if gk else ''} | {rb} | {f(t) if tk else ''} | {rt} |")
for a in ["mlp", "cnn"]:
    b, t = go.get((a, "dp_step")), torch.get((a, "dp_step_vmap"))
    if b and t:
        lines.append("")
        lines.append(f"{a}: bulwark's DP-SGD step takes {b / t:.2f}x the time of PyTorch's vmap DP-SGD step.")
open(f"{out}/dp.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
