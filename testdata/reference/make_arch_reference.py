#!/usr/bin/env python3
"""Golden values for bulwark's `mlp` and `cnn` architectures from PyTorch.

Builds the same networks in PyTorch (Debian's python3-torch), gives them
seeded random weights, runs a seeded batch through them, and writes:
  <arch>.weights.safetensors  the weights, named as bulwark's nn.Build names them
  <arch>.golden.json          input, labels, logits, per-example loss and
                              d(sum of cross-entropy)/d(input)
The Go test internal/engine/reference_test.go loads the weights into
nn.Build's graph and requires the same logits (max abs diff <= 1e-4) and
input gradients (relative error <= 1e-3).

Run: /usr/bin/python3 testdata/reference/make_arch_reference.py
"""
import json
import os
import struct

import torch
import torch.nn as tnn

HERE = os.path.dirname(os.path.abspath(__file__))


def write_safetensors(path, tensors):
    # The safetensors layout, written by hand: torch 1.13 in Debian has no
    # safetensors package. Header: names sorted, data laid out in that order.
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().to(torch.float32)
        b = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def mlp():
    net = tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 256), tnn.ReLU(), tnn.Linear(256, 256), tnn.ReLU(), tnn.Linear(256, 10))
    names = {"1": "dense2", "3": "dense4", "5": "dense6"}
    return net, names


def cnn():
    net = tnn.Sequential(
        tnn.Conv2d(1, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(32, 64, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(64 * 7 * 7, 128), tnn.ReLU(), tnn.Linear(128, 10))
    names = {"0": "conv1", "3": "conv4", "7": "dense8", "9": "dense10"}
    return net, names


def main():
    for arch, make in [("mlp", mlp), ("cnn", cnn)]:
        torch.manual_seed(1234)
        net, names = make()
        # Non-zero biases so that their handling is checked too.
        with torch.no_grad():
            for p in net.parameters():
                if p.dim() == 1:
                    p.uniform_(-0.2, 0.2)
        net.eval()
        weights = {}
        for key, t in net.state_dict().items():
            idx, kind = key.split(".")
            weights[names[idx] + "." + kind] = t
        write_safetensors(os.path.join(HERE, arch + ".weights.safetensors"), weights)

        x = torch.rand(8, 1, 28, 28, dtype=torch.float32, requires_grad=True)
        y = torch.randint(0, 10, (8,))
        logits = net(x)
        losses = tnn.functional.cross_entropy(logits, y, reduction="none")
        losses.sum().backward()
        golden = {
            "input_shape": list(x.shape),
            "x": x.detach().flatten().tolist(),
            "labels": y.tolist(),
            "logits": logits.detach().flatten().tolist(),
            "losses": losses.detach().tolist(),
            "grad": x.grad.flatten().tolist(),
            "torch_version": torch.__version__,
        }
        with open(os.path.join(HERE, arch + ".golden.json"), "w") as f:
            json.dump(golden, f)
        print(arch, "ok", logits.shape)


if __name__ == "__main__":
    main()
