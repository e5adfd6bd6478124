#!/usr/bin/env python3
"""PyTorch side of `make bench`: the same mlp and cnn as bulwark's registry,
batch 128 of 28x28x1, timed the way internal/engine's Go benchmarks time
bulwark: inference (forward only), input gradient (forward + backward to the
input of the summed cross-entropy), training step (forward, backward, Adam).

Prints one line per measurement: "<arch> <what> <median ms> <repeats>".
Run with OPENBLAS_NUM_THREADS=1 (set by bench/compare.sh); torch uses 2
threads, the size of the machine.
"""
import statistics
import sys
import time

import torch
import torch.nn as tnn

torch.set_num_threads(2)
torch.manual_seed(1)
B = 128


def mlp():
    return tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 256), tnn.ReLU(), tnn.Linear(256, 256), tnn.ReLU(), tnn.Linear(256, 10))


def cnn():
    return tnn.Sequential(
        tnn.Conv2d(1, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(32, 64, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(64 * 7 * 7, 128), tnn.ReLU(), tnn.Linear(128, 10))


def timeit(fn, seconds):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), len(times)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    x = torch.rand(B, 1, 28, 28)
    y = torch.randint(0, 10, (B,))
    for name, make in [("mlp", mlp), ("cnn", cnn)]:
        net = make()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loss_fn = tnn.CrossEntropyLoss(reduction="sum")

        def infer():
            with torch.no_grad():
                net(x)

        def input_grad():
            # Parameters frozen, so backward computes only what an attack
            # needs (the fastest PyTorch form; bulwark computes the same).
            for p in net.parameters():
                p.requires_grad_(False)
            xi = x.clone().requires_grad_(True)
            loss_fn(net(xi), y).backward()
            for p in net.parameters():
                p.requires_grad_(True)
            return xi.grad

        def train_step():
            opt.zero_grad()
            tnn.functional.cross_entropy(net(x), y).backward()
            opt.step()

        for what, fn in [("inference", infer), ("input_grad", input_grad), ("train_step", train_step)]:
            ms, n = timeit(fn, seconds)
            print(f"{name} {what} {ms:.3f} {n}", flush=True)


if __name__ == "__main__":
    main()
