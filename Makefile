# bulwark — the two commands a newcomer needs are `make demo` and `make test`.
# GOEXPERIMENT=simd turns on the SIMD matrix kernels of GoMLX's go backend
# (about 8x faster matmuls); every build and test here sets it.
export GOEXPERIMENT := simd
GO      ?= go
BIN     := bin/bulwark
DEMO    := demo
FUZZTIME ?= 60s

.PHONY: all setup build demo test test-short bench bench-dp bench-hardening bench-llm llm-model fuzz vet clean

all: build

setup:
	@scripts/setup.sh

build:
	$(GO) build -o $(BIN) ./cmd/bulwark

# Sets up, trains a small CNN on Fashion-MNIST, evaluates it on the test split
# and ends with a robustness assessment: demo/report/report.html.
demo: setup build
	@mkdir -p $(DEMO)
	$(BIN) version
	$(BIN) train --data fashion-mnist --arch cnn --epochs 3 --seed 1 --out $(DEMO)/fm-cnn.safetensors
	$(BIN) eval --model $(DEMO)/fm-cnn.safetensors --data fashion-mnist --split test
	$(BIN) assess --model $(DEMO)/fm-cnn.safetensors --data fashion-mnist --profile quick --out $(DEMO)/report
	@echo "open $(DEMO)/report/report.html in a browser"

# Every test, after installing what the tests need.
test: setup
	$(GO) vet ./...
	$(GO) test -timeout 30m ./...

test-short:
	$(GO) test -short ./...

# Speed against PyTorch on this machine and accuracy with the default
# training settings; writes bench/results/engine.md and accuracy.md.
bench:
	@scripts/setup.sh python3-torch python3-onnx libopenblas0-pthread
	$(GO) build -o $(BIN) ./cmd/bulwark
	bench/compare.sh
	bench/accuracy.sh
	bench/attack.sh
	bench/dp.sh
	bench/llm.sh

# The prompt classifier's detection, evasion and latency figures: llm.md.
bench-llm: build
	bench/llm.sh

# DP-SGD's step time against a normal step, bulwark and PyTorch: dp.md.
bench-dp:
	@scripts/setup.sh python3-torch
	$(GO) build -o $(BIN) ./cmd/bulwark
	bench/dp.sh

# The hardening figures (adversarial training, DP-SGD accuracy, certified
# accuracy, a comparison report): hardening.md. About 1.5 hours.
bench-hardening: setup build
	bench/hardening.sh

# Rebuilds the prompt classifier built into the binary from the training
# parts of shared/data/llm and of our own benign prompts in llm/data (the
# held-out parts stay out).
LLM_DATA ?= ../shared/data/llm
llm-model: build
	$(BIN) llm train --data $(LLM_DATA),llm/data --out llm/classifier/default.model

# Runs every fuzz target for FUZZTIME each.
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

vet:
	$(GO) vet ./...

clean:
	rm -rf bin $(DEMO)
