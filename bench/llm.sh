#!/usr/bin/env bash
# The prompt classifier's figures (LLM issue): detection on the held-out part
# of shared/data/llm (never trained on; see llm/corpus.Split), recall after
# each evasion transform, latency per text (p50/p99, one core), and the false
# positives on the held-out part of our own benign prompts (llm/data), and
# the latency the guard proxy adds to a chat request (go test -bench
# Overhead ./llm/guard: the same request straight to a scripted upstream and
# through the guard, on loopback; median of 5).
# Writes bench/results/llm.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOEXPERIMENT=simd
LLM_DATA=${LLM_DATA:-../shared/data/llm}
out=bench/results
mkdir -p "$out/tmp"
go build -o bin/bulwark ./cmd/bulwark
b=bin/bulwark
transforms=$(printf '%s,' base64 hex rot13 leetspeak homoglyphs zero-width tags fullwidth)
cmd1="$b llm eval --data $LLM_DATA --split heldout --transforms ${transforms%,} --json"
cmd2="$b llm eval --data llm/data --split heldout --json"
# Latency: the median over five runs of each run's p50 and p99.
for i in 1 2 3 4 5; do $cmd1 > "$out/tmp/llm-heldout-$i.json"; done
$cmd2 > "$out/tmp/llm-own.json"
cmd3="go test ./llm/guard -run ^\$ -bench Overhead -benchtime 2s -count 5"
$cmd3 > "$out/tmp/llm-guard.txt"
/usr/bin/python3 - "$out" "$cmd1" "$cmd2" "$cmd3" <<'PY'
import json, re, statistics, subprocess, sys
out, cmd1, cmd2, cmd3 = sys.argv[1:5]
bench = {}
for line in open(f"{out}/tmp/llm-guard.txt"):
    m = re.match(r"BenchmarkOverhead/(\w+)-\d+\s+\d+\s+([\d.]+) ns/op", line)
    if m:
        bench.setdefault(m[1], []).append(float(m[2]) / 1e3)
direct, guarded = statistics.median(bench["direct"]), statistics.median(bench["guard"])
runs = [json.load(open(f"{out}/tmp/llm-heldout-{i}.json")) for i in range(1, 6)]
h, own = runs[0], json.load(open(f"{out}/tmp/llm-own.json"))
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
pct = lambda v: f"{100 * v:.1f}%"
p50 = statistics.median(r["latency_p50_us"] for r in runs)
p99 = statistics.median(r["latency_p99_us"] for r in runs)
L = [f"Machine: {cpu}. Built-in model (thresholds: prompt {h['thresholds']['prompt']:.2f}, document {h['thresholds']['document']:.2f}).", "",
     f"Held-out part of shared/data/llm: {h['attacks']} attacks, {h['benign']} benign records.", "",
     "| measure | value |", "|---|---|",
     f"| recall, all attacks | {pct(h['recall'])} |",
     f"| recall, injection | {pct(h['recall_by_label']['injection'])} |",
     f"| recall, jailbreak | {pct(h['recall_by_label']['jailbreak'])} |",
     f"| false-positive rate, all benign | {pct(h['fpr'])} ({h['false_positives']} of {h['benign']}) |",
     f"| false-positive rate, benign prompts | {pct(h['fpr_by_kind']['prompt'])} |",
     f"| false-positive rate, benign documents | {pct(h['fpr_by_kind']['document'])} |",
     f"| precision | {pct(h['precision'])} |",
     f"| balanced accuracy ((recall + 1 − FPR) / 2, as PINT) | {pct(h['balanced_accuracy'])} |",
     f"| latency per text, p50 / p99 (median of 5 runs) | {p50:.0f} µs / {p99:.0f} µs |",
     f"| false-positive rate, held-out part of our own benign prompts (llm/data) | {pct(own['fpr'])} ({own['false_positives']} of {own['benign']}) |",
     f"| guard proxy: a ~600-character chat request, direct / through the guard / added (median of 5) | {direct:.0f} µs / {guarded:.0f} µs / {guarded - direct:.0f} µs |",
     "", "Recall on the held-out attacks after each evasion transform (applied to the whole attack text):", "",
     "| transform | recall |", "|---|---|"] + [f"| {t['transform']} | {pct(t['recall'])} |" for t in h["transforms"]]
L += ["", "Commands:", "", "```", cmd1, cmd2, cmd3, "```"]
open(f"{out}/llm.md", "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
