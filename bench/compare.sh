#!/usr/bin/env bash
# `make bench`: bulwark's engines against PyTorch on this machine, in one run.
# For mlp and cnn at batch 128 (28x28x1): inference, input gradient, and a
# training step (Adam). Go: `go test -bench` of internal/engine/enginebench
# (both engines), -count $COUNT; PyTorch: bench/torch_bench.py run
# $COUNT times. Each figure is the median over the repeats. Writes
# bench/results/engine.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOEXPERIMENT=simd
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-2s}
out=bench/results
mkdir -p "$out/tmp"

echo "bench: go engines ($COUNT x $BENCHTIME each)..." >&2
go test ./internal/engine/enginebench -run '^$' -bench . -benchtime "$BENCHTIME" -count "$COUNT" > "$out/tmp/go.txt"
echo "bench: pytorch ($COUNT runs)..." >&2
: > "$out/tmp/torch.txt"
for i in $(seq "$COUNT"); do
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_bench.py 2 >> "$out/tmp/torch.txt"
done

/usr/bin/python3 - "$out" <<'PY'
import re, statistics, sys, platform, subprocess
out = sys.argv[1]
def go(path, engine):
    r = {}
    for line in open(path):
        m = re.match(r"BenchmarkEngines/(\w+)/(mlp|cnn)/(\w+)-\d+\s+\d+\s+([\d.]+) ns/op", line)
        if m and m[1] == engine:
            r.setdefault((m[2], m[3]), []).append(float(m[4]) / 1e6)
    return {k: statistics.median(v) for k, v in r.items()}
torch = {}
for line in open(f"{out}/tmp/torch.txt"):
    a, w, ms, _ = line.split()
    torch.setdefault((a, w), []).append(float(ms))
torch = {k: statistics.median(v) for k, v in torch.items()}
engines = {e: go(f"{out}/tmp/go.txt", e) for e in ("gomlx", "blas")}
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
import torch as T
lines = [f"Machine: {cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores; "
         f"PyTorch {T.__version__} (Debian python3-torch, OPENBLAS_NUM_THREADS=1, torch.set_num_threads(2)); "
         f"batch 128, 28x28x1; medians of repeated runs (ms per batch; lower is better).", "",
         "| model | measurement | PyTorch ms | bulwark blas ms | blas / PyTorch | bulwark gomlx ms | gomlx / PyTorch |",
         "|---|---|---|---|---|---|---|"]
for a in ["mlp", "cnn"]:
    for w in ["inference", "input_grad", "train_step"]:
        t = torch.get((a, w))
        b = engines["blas"].get((a, w))
        g = engines["gomlx"].get((a, w))
        f = lambda v: f"{v:.2f}" if v is not None else "n/a"
        r = lambda v: f"{v / t:.2f}x" if v is not None and t else "n/a"
        lines.append(f"| {a} | {w} | {f(t)} | {f(b)} | {r(b)} | {f(g)} | {r(g)} |")
for a in ["mlp", "cnn"]:
    t = torch.get((a, "inference"))
    b = engines["blas"].get((a, "inference"))
    g = engines["gomlx"].get((a, "inference"))
    lines.append("")
    lines.append(f"{a} inference images/s: PyTorch {128e3 / t:.0f}, blas {128e3 / b:.0f}, gomlx {128e3 / g:.0f}" if t and b and g else "")
open(f"{out}/engine.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
