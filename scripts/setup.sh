#!/usr/bin/env bash
# Installs what building and testing bulwark needs on a fresh Debian machine
# (Go itself is expected on PATH), then downloads the Go modules pinned in
# go.sum. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the Fashion-MNIST dataset, OpenBLAS headers for the BLAS
# engine (cgo), a C compiler for cgo. Extra packages for `make bench` are
# passed as arguments (python3-torch, python3-onnx).
pkgs=(dataset-fashion-mnist libopenblas-dev gcc "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "setup: Go 1.26 or newer must be on PATH" >&2; exit 1; }
go mod download
