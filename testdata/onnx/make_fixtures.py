#!/usr/bin/python3
"""Build the ONNX fixtures and golden references for model/onnx.

Run from anywhere with Debian's python (torch 1.13, onnx 1.12):

    /usr/bin/python3 testdata/onnx/make_fixtures.py

For each small classifier of 28x28x1 images (NCHW) it writes

    <name>.onnx         exported with torch.onnx.export(opset_version=13) and a
                        dynamic batch axis, so the importer meets the
                        Shape/Gather/Unsqueeze/Concat patterns PyTorch emits;
    <name>.golden.json  a reference batch computed by torch in float32:

        {"input_shape": [4, 1, 28, 28], "x": [...], "labels": [...],
         "logits_shape": [4, 10], "logits": [...], "grad": [...]}

    x, logits and grad are flattened row-major. logits is the graph output
    exactly as exported. grad is d/dx of the SUM over the batch of
    cross_entropy(logits, label), i.e. torch.nn.functional.cross_entropy(
    logits, labels, reduction="sum"). For bn_avg, whose graph ends in
    Softmax, the probabilities are still fed to cross_entropy as if they were
    logits (cross_entropy applies its own log-softmax on top): that is what an
    engine that treats the graph output as logits computes, so the numbers can
    be compared one to one.

Everything is seeded (torch.manual_seed), so a rerun reproduces the same
weights and batches on the same torch build. Each .onnx file stays well under
200 KB.

Two nodes PyTorch never exports in eval mode are added afterwards with the
onnx package, to exercise the importer: a Dropout (identity at inference, its
unused mask output listed) in bn_avg, and an Identity in ops. Neither changes
the numbers.
"""

import json
import os
import warnings

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 13
BATCH = 4
CLASSES = 10


class MLP(nn.Module):
    """Flatten by x.view(x.size(0), -1): the Shape->Gather->Unsqueeze->Concat->Reshape pattern."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 32)
        self.fc2 = nn.Linear(32, CLASSES)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x)))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 7 * 7, 32)
        self.fc2 = nn.Linear(32, CLASSES)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


class BNAvg(nn.Module):
    """BatchNorm kept as its own node (exported with TrainingMode.PRESERVE so the
    eval peephole does not fold it into the Conv), a Reshape with a constant
    target, and a Softmax at the end: the output is probabilities."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 12, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(12, 16)
        self.fc2 = nn.Linear(16, CLASSES)

    def forward(self, x):
        x = F.relu(self.bn(self.conv1(x)))
        x = F.avg_pool2d(x, 2)  # 14x14
        x = torch.tanh(self.conv2(x))  # 7x7
        x = F.adaptive_avg_pool2d(x, 1)  # GlobalAveragePool
        x = x.reshape(-1, 12)  # Reshape by the constant [-1, 12]
        x = torch.sigmoid(self.fc1(x))
        return F.softmax(self.fc2(x), dim=1)


class Ops(nn.Module):
    """MatMul + Add with explicit parameters, arithmetic with constants,
    Transpose, Sigmoid and both AveragePool padding conventions."""

    def __init__(self):
        super().__init__()
        self.pool_ex = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.pool_in = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=True)
        self.w1 = nn.Parameter(torch.randn(14 * 14, 24) * 0.1)
        self.b1 = nn.Parameter(torch.randn(24) * 0.1)
        self.w2 = nn.Parameter(torch.randn(CLASSES, 24) * 0.3)
        self.b2 = nn.Parameter(torch.randn(CLASSES) * 0.1)

    def forward(self, x):
        a = (self.pool_ex(x) - 0.5) * 2.0
        b = self.pool_in(x) / 0.25
        h = (a + b).transpose(2, 3)  # Transpose perm [0, 1, 3, 2]
        h = torch.flatten(h, 1)
        h = torch.sigmoid(torch.matmul(h, self.w1) + self.b1)
        return torch.matmul(h, self.w2.t()) + self.b2


def export(model, name, post=None):
    model.eval()
    # PRESERVE keeps BatchNormalization as its own node; with the model in eval
    # mode constant folding is safe, whatever torch warns.
    warnings.filterwarnings("ignore", message="It is recommended that constant folding")
    dummy = torch.rand(BATCH, 1, 28, 28)
    path = os.path.join(HERE, name + ".onnx")
    torch.onnx.export(
        model,
        dummy,
        path,
        opset_version=OPSET,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=True,
    )
    m = onnx.load(path)
    if post is not None:
        post(m.graph)
    onnx.checker.check_model(m)
    onnx.save(m, path)
    assert os.path.getsize(path) < 200 * 1024, path
    return m


def insert_after(graph, op_type, value, extra_outputs=()):
    """Route every consumer of value (and the graph output) through a new node."""
    new = value + "_" + op_type.lower()
    for n in graph.node:
        for i, inp in enumerate(n.input):
            if inp == value:
                n.input[i] = new
    for o in graph.output:
        if o.name == value:
            o.name = new
    node = helper.make_node(op_type, [value], [new, *extra_outputs], name=op_type + "_inserted")
    # keep topological order: right after the producer of value
    for idx, n in enumerate(graph.node):
        if value in n.output:
            graph.node.insert(idx + 1, node)
            return
    graph.node.insert(0, node)


def add_dropout(graph):
    # The input of the Reshape is GlobalAveragePool's output; put Dropout there.
    gap = next(n for n in graph.node if n.op_type == "GlobalAveragePool")
    insert_after(graph, "Dropout", gap.output[0], extra_outputs=["dropout_mask_unused"])


def add_identity(graph):
    tr = next(n for n in graph.node if n.op_type == "Transpose")
    insert_after(graph, "Identity", tr.output[0])


def golden(model, name, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(BATCH, 1, 28, 28, generator=g)
    labels = torch.randint(0, CLASSES, (BATCH,), generator=g)
    x.requires_grad_(True)
    model.eval()
    logits = model(x)
    loss = F.cross_entropy(logits, labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    out = {
        "input_shape": list(x.shape),
        "x": x.detach().flatten().tolist(),
        "labels": labels.tolist(),
        "logits_shape": list(logits.shape),
        "logits": logits.detach().flatten().tolist(),
        "grad": grad.flatten().tolist(),
    }
    with open(os.path.join(HERE, name + ".golden.json"), "w") as f:
        json.dump(out, f)
        f.write("\n")


def randomize_bn(bn):
    # Nonzero running statistics and a non-trivial affine part, so the
    # importer's BatchNormalization parameters are all checked.
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)


def main():
    torch.manual_seed(1234)
    mlp = MLP()
    cnn = CNN()
    bn_avg = BNAvg()
    randomize_bn(bn_avg.bn)
    ops = Ops()

    for seed, (name, model, post) in enumerate(
        [
            ("mlp", mlp, None),
            ("cnn", cnn, None),
            ("bn_avg", bn_avg, add_dropout),
            ("ops", ops, add_identity),
        ]
    ):
        export(model, name, post)
        golden(model, name, 100 + seed)


if __name__ == "__main__":
    main()
