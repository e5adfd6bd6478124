#!/usr/bin/env python3
"""PyTorch side of bench/dp.sh: what a DP-SGD step costs against a normal
training step for the mlp and cnn of bulwark's registry, batch 256 of
28x28x1, Adam, clip norm 1, noise multiplier 1.

  train_step     forward, backward, Adam on the batch
  dp_step_vmap   per-example gradients with torch.func / functorch (vmap of grad
                 over the batch: the vectorised form Opacus and JAX use), each
                 clipped to norm 1, summed, Gaussian noise, Adam
  dp_step_loop   the same with one backward pass per example (the
                 "microbatch" form of TensorFlow Privacy and of hand-written
                 DP-SGD): what DP-SGD costs without vectorisation

Prints one line per measurement: "<arch> <what> <median ms> <repeats>".
Opacus itself is not packaged in Debian; dp_step_vmap computes the same
per-example gradients with PyTorch's own vectorisation.
"""
import sys

import torch
import torch.nn as tnn
try:  # PyTorch 2
    from torch.func import functional_call, grad, vmap
except ImportError:  # PyTorch 1.13 (Debian bookworm): functorch is bundled
    from functorch import grad, vmap
    from torch.nn.utils.stateless import functional_call

from torch_bench import cnn, mlp, timeit

torch.set_num_threads(2)
torch.manual_seed(1)
B = 256
CLIP, SIGMA = 1.0, 1.0


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    x = torch.rand(B, 1, 28, 28)
    y = torch.randint(0, 10, (B,))
    for name, make in [("mlp", mlp), ("cnn", cnn)]:
        net = make()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        params = dict(net.named_parameters())

        def loss_one(p, xi, yi):
            out = functional_call(net, p, (xi.unsqueeze(0),))
            return tnn.functional.cross_entropy(out, yi.unsqueeze(0))

        per_example = vmap(grad(loss_one), in_dims=(None, 0, 0))

        def train_step():
            opt.zero_grad()
            tnn.functional.cross_entropy(net(x), y).backward()
            opt.step()

        def noisy_step(grads):
            # grads: name -> [B, ...] per-example gradients.
            flat = torch.cat([g.reshape(B, -1) for g in grads.values()], dim=1)
            scale = (CLIP / (flat.norm(dim=1) + 1e-6)).clamp(max=1.0)
            for n, p in net.named_parameters():
                g = torch.einsum("b,b...->...", scale, grads[n])
                p.grad = (g + SIGMA * CLIP * torch.randn_like(g)) / B
            opt.step()

        def dp_step_vmap():
            with torch.no_grad():
                detached = {k: v.detach() for k, v in params.items()}
            noisy_step(per_example(detached, x, y))

        def dp_step_loop():
            grads = {n: torch.empty((B,) + p.shape) for n, p in net.named_parameters()}
            for i in range(B):
                net.zero_grad(set_to_none=True)
                tnn.functional.cross_entropy(net(x[i:i + 1]), y[i:i + 1]).backward()
                for n, p in net.named_parameters():
                    grads[n][i] = p.grad
            noisy_step(grads)

        for what, fn in [("train_step", train_step), ("dp_step_vmap", dp_step_vmap), ("dp_step_loop", dp_step_loop)]:
            ms, n = timeit(fn, seconds)
            print(f"{name} {what} {ms:.3f} {n}", flush=True)


if __name__ == "__main__":
    main()
