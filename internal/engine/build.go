package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // the graph DSL reads best unqualified

	"github.com/bulwark-sec/bulwark/nn"
)

// value is a tensor in the graph being built. The graph's semantics are those
// of ONNX and PyTorch (images NCHW), but a 4-D value may be held physically as
// NHWC: the im2col convolution and the pools are one contiguous matrix
// product or reduction in that layout, and the layout changes only where an
// op needs the logical order (flatten, reshape, transpose, matmul).
type value struct {
	n    *Node
	nhwc bool // physical layout is NHWC; logical is NCHW
}

// logical returns the node in its logical (NCHW) layout.
func (v value) logical() *Node {
	if v.nhwc {
		return TransposeAllAxes(v.n, 0, 3, 1, 2)
	}
	return v.n
}

// nhwcOf returns a 4-D value in NHWC layout.
func nhwcOf(v value) *Node {
	if v.nhwc {
		return v.n
	}
	if v.n.Rank() != 4 {
		panic(fmt.Errorf("expected a 4-D (NCHW) tensor, got shape %s", v.n.Shape()))
	}
	return TransposeAllAxes(v.n, 0, 2, 3, 1)
}

// mode selects how batch-dependent ops behave.
type mode int

const (
	inference mode = iota
	training       // batch norm uses batch statistics and reports running-stat updates
)

// builder turns an nn.Graph into GoMLX nodes.
type builder struct {
	g      *nn.Graph
	mode   mode
	values map[string]value
	// bnUpdates maps a running-statistic parameter index to its new value,
	// filled in training mode.
	bnUpdates map[int]*Node
	paramIdx  map[string]int
	// preActs collects, for per-example gradients, the output of every
	// dense/conv product (before bias) and its inputs, by parameter index of
	// the weight.
	taps map[int]*tap
}

// tap records what the batch trick needs for one weight: the layer input as
// a [B, P, K] matrix (P positions, K features; P=1 for dense) and the
// pre-activation [B, P, O] whose gradient gives per-example weight gradients.
type tap struct {
	cols    *Node // [B, P, K]
	pre     *Node // the product itself, on the path to the loss; its gradient reshapes to [B, P, O]
	p       int   // positions per example (1 for dense)
	biasIdx int   // parameter index of the bias, or -1
	conv    bool  // weight is [O,C,kh,kw] (conv) rather than [O,K] (dense)
	kshape  []int // conv weight shape, to reorder per-example gradients
}

func newBuilder(g *nn.Graph, m mode) *builder {
	b := &builder{g: g, mode: m, values: map[string]value{}, bnUpdates: map[int]*Node{}, paramIdx: map[string]int{}}
	for i, p := range g.Params {
		b.paramIdx[p.Name] = i
	}
	return b
}

// forward builds the graph on input x ([B, InputShape...], logical layout)
// with the parameter nodes params (one per g.Params entry, same order) and
// returns the logits node.
func (b *builder) forward(x *Node, params []*Node) (out *Node) {
	for i, p := range b.g.Params {
		b.values[p.Name] = value{n: params[i]}
	}
	b.values[b.g.Input] = value{n: x}
	for i := range b.g.Nodes {
		nd := &b.g.Nodes[i]
		func() {
			defer func() {
				if r := recover(); r != nil {
					panic(nodeError(nd, r))
				}
			}()
			b.values[nd.Output] = b.node(nd)
		}()
	}
	v, ok := b.values[b.g.Output]
	if !ok {
		panic(fmt.Errorf("graph output %q was never computed", b.g.Output))
	}
	return v.logical()
}

// nodeError names the node that failed and keeps only the first line of
// GoMLX's message (the rest is a stack trace that helps nobody using bulwark).
func nodeError(nd *nn.Node, r any) error {
	msg := fmt.Sprint(r)
	if err, ok := r.(error); ok {
		msg = err.Error()
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	name := nd.Name
	if name == "" {
		name = nd.Output
	}
	return fmt.Errorf("node %q (%s): %s", name, nd.Op, msg)
}

func (b *builder) in(nd *nn.Node, i int) value {
	if i >= len(nd.Inputs) || nd.Inputs[i] == "" {
		panic(fmt.Errorf("missing input %d", i))
	}
	v, ok := b.values[nd.Inputs[i]]
	if !ok {
		panic(fmt.Errorf("input %q is not defined", nd.Inputs[i]))
	}
	return v
}

func (b *builder) hasIn(nd *nn.Node, i int) bool { return i < len(nd.Inputs) && nd.Inputs[i] != "" }

func (b *builder) node(nd *nn.Node) value {
	a := nd.Attrs
	switch nd.Op {
	case nn.OpConv:
		return b.conv(nd)
	case nn.OpDense:
		x := b.in(nd, 0).logical()
		w := b.in(nd, 1).n
		if x.Rank() != 2 || w.Rank() != 2 {
			panic(fmt.Errorf("dense needs a [batch, features] input and [out, in] weight, got %s and %s", x.Shape(), w.Shape()))
		}
		if x.Shape().Dim(1) != w.Shape().Dim(1) {
			panic(fmt.Errorf("input has %d features but the weight expects %d", x.Shape().Dim(1), w.Shape().Dim(1)))
		}
		y := DotGeneral(x, []int{1}, nil, w, []int{1}, nil) // [B, out]
		biasIdx := -1
		if b.hasIn(nd, 2) {
			biasIdx = b.paramIdx[nd.Inputs[2]]
		}
		if b.taps != nil {
			if wi, ok := b.paramIdx[nd.Inputs[1]]; ok {
				bsz := x.Shape().Dim(0)
				b.taps[wi] = &tap{cols: Reshape(x, bsz, 1, -1), pre: y, p: 1, biasIdx: biasIdx}
			}
		}
		if b.hasIn(nd, 2) {
			y = Add(y, ExpandAxes(b.in(nd, 2).n, 0))
		}
		return value{n: y}
	case nn.OpGemm:
		A, B := b.in(nd, 0).logical(), b.in(nd, 1).logical()
		if a.TransA {
			A = Transpose(A, 0, 1)
		}
		if a.TransB {
			B = Transpose(B, 0, 1)
		}
		y := DotGeneral(A, []int{1}, nil, B, []int{0}, nil)
		if a.Alpha != 1 {
			y = MulScalar(y, a.Alpha)
		}
		if b.hasIn(nd, 2) {
			c := b.in(nd, 2).logical()
			if a.Beta != 1 {
				c = MulScalar(c, a.Beta)
			}
			y = broadcastBinary(y, c, Add)
		}
		return value{n: y}
	case nn.OpMatMul:
		return value{n: MatMul(b.in(nd, 0).logical(), b.in(nd, 1).logical())}
	case nn.OpAdd:
		return b.binary(nd, Add)
	case nn.OpSub:
		return b.binary(nd, Sub)
	case nn.OpMul:
		return b.binary(nd, Mul)
	case nn.OpDiv:
		return b.binary(nd, Div)
	case nn.OpRelu:
		v := b.in(nd, 0)
		return value{n: Max(v.n, ZerosLike(v.n)), nhwc: v.nhwc}
	case nn.OpSigmoid:
		v := b.in(nd, 0)
		return value{n: Sigmoid(v.n), nhwc: v.nhwc}
	case nn.OpTanh:
		v := b.in(nd, 0)
		return value{n: Tanh(v.n), nhwc: v.nhwc}
	case nn.OpIdentity:
		return b.in(nd, 0)
	case nn.OpSoftmax:
		x := b.in(nd, 0).logical()
		return value{n: Softmax(x, adjustAxis(a.Axis, x.Rank()))}
	case nn.OpMaxPool:
		return value{n: maxPool(nhwcOf(b.in(nd, 0)), a.Kernel, a.Strides, a.Pads), nhwc: true}
	case nn.OpAvgPool:
		return value{n: avgPool(nhwcOf(b.in(nd, 0)), a.Kernel, a.Strides, a.Pads, a.CountIncludePad), nhwc: true}
	case nn.OpGlobalAvgPool:
		x := nhwcOf(b.in(nd, 0))
		return value{n: ReduceAndKeep(x, ReduceMean, 1, 2), nhwc: true}
	case nn.OpBatchNorm:
		return b.batchNorm(nd)
	case nn.OpFlatten:
		x := b.in(nd, 0).logical()
		axis := adjustAxis(a.Axis, x.Rank())
		dims := x.Shape().Dimensions
		return value{n: Reshape(x, nn.Numel(dims[:axis]), nn.Numel(dims[axis:]))}
	case nn.OpReshape:
		x := b.in(nd, 0).logical()
		return value{n: Reshape(x, reshapeDims(x.Shape().Dimensions, a.Shape)...)}
	case nn.OpTranspose:
		x := b.in(nd, 0).logical()
		perm := a.Perm
		if len(perm) == 0 { // ONNX default: reverse the axes
			for i := x.Rank() - 1; i >= 0; i-- {
				perm = append(perm, i)
			}
		}
		return value{n: TransposeAllAxes(x, perm...)}
	}
	panic(fmt.Errorf("unsupported op %q", nd.Op))
}

func adjustAxis(axis, rank int) int {
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		panic(fmt.Errorf("axis out of range for rank %d", rank))
	}
	return axis
}

// reshapeDims resolves ONNX Reshape semantics: 0 copies the input dimension,
// -1 takes what is left.
func reshapeDims(in, spec []int) []int {
	out := slices.Clone(spec)
	infer := -1
	known := 1
	for i, d := range out {
		switch {
		case d == 0:
			if i >= len(in) {
				panic(fmt.Errorf("reshape %v: 0 at axis %d but the input has rank %d", spec, i, len(in)))
			}
			out[i] = in[i]
		case d == -1:
			if infer >= 0 {
				panic(fmt.Errorf("reshape %v: more than one -1", spec))
			}
			infer = i
			continue
		case d < 0:
			panic(fmt.Errorf("reshape %v: negative dimension", spec))
		}
		known *= out[i]
	}
	total := nn.Numel(in)
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			panic(fmt.Errorf("reshape %v: cannot infer -1 from %d elements", spec, total))
		}
		out[infer] = total / known
	} else if known != total {
		panic(fmt.Errorf("reshape %v of input %v: element counts differ", spec, in))
	}
	return out
}

// binary applies an elementwise op with numpy broadcasting. When one operand
// is held as NHWC, the other is brought to that layout instead of converting
// the big operand back.
func (b *builder) binary(nd *nn.Node, op func(x, y *Node) *Node) value {
	x, y := b.in(nd, 0), b.in(nd, 1)
	if x.nhwc || y.nhwc {
		return value{n: broadcastBinary(toNHWCRank4(x), toNHWCRank4(y), op), nhwc: true}
	}
	return value{n: broadcastBinary(x.n, y.n, op)}
}

// toNHWCRank4 expresses a logical tensor of rank <= 4 as a rank-4 NHWC node,
// numpy-style (leading axes of size 1 are added first).
func toNHWCRank4(v value) *Node {
	if v.nhwc {
		return v.n
	}
	n := v.n
	if n.Rank() > 4 {
		panic(fmt.Errorf("cannot broadcast rank %d against an image tensor", n.Rank()))
	}
	for n.Rank() < 4 {
		n = ExpandAxes(n, 0)
	}
	return TransposeAllAxes(n, 0, 2, 3, 1)
}

// broadcastBinary is numpy broadcasting, which GoMLX's ops leave to the caller.
func broadcastBinary(x, y *Node, op func(x, y *Node) *Node) *Node {
	for x.Rank() < y.Rank() {
		x = ExpandAxes(x, 0)
	}
	for y.Rank() < x.Rank() {
		y = ExpandAxes(y, 0)
	}
	dims := make([]int, x.Rank())
	for i := range dims {
		dx, dy := x.Shape().Dim(i), y.Shape().Dim(i)
		switch {
		case dx == dy, dy == 1:
			dims[i] = dx
		case dx == 1:
			dims[i] = dy
		default:
			panic(fmt.Errorf("shapes %v and %v do not broadcast", x.Shape().Dimensions, y.Shape().Dimensions))
		}
	}
	if !slices.Equal(x.Shape().Dimensions, dims) {
		x = BroadcastToDims(x, dims...)
	}
	if !slices.Equal(y.Shape().Dimensions, dims) {
		y = BroadcastToDims(y, dims...)
	}
	return op(x, y)
}

// batchNorm normalises over every axis but the channel. In training mode it
// uses the batch's statistics and records the new running statistics
// (PyTorch's update: biased variance to normalise, unbiased for the running
// estimate).
func (b *builder) batchNorm(nd *nn.Node) value {
	v := b.in(nd, 0)
	scale, bias, mean, variance := b.in(nd, 1).n, b.in(nd, 2).n, b.in(nd, 3).n, b.in(nd, 4).n
	eps := nd.Attrs.Epsilon
	if eps == 0 {
		eps = 1e-5
	}
	var x *Node
	var axes []int
	nhwc := false
	switch {
	case v.n.Rank() == 4:
		x, nhwc, axes = nhwcOf(v), true, []int{0, 1, 2}
	case v.n.Rank() == 2:
		x, axes = v.n, []int{0}
	default:
		panic(fmt.Errorf("batch norm needs a rank 2 or 4 input, got %s", v.n.Shape()))
	}
	if b.mode == training {
		mean = ReduceMean(x, axes...)
		variance = ReduceMean(Square(broadcastBinary(x, mean, Sub)), axes...)
		count := 1
		for _, ax := range axes {
			count *= x.Shape().Dim(ax)
		}
		m := nd.Attrs.Momentum
		if m == 0 {
			m = 0.9
		}
		unbiased := variance
		if count > 1 {
			unbiased = MulScalar(variance, float64(count)/float64(count-1))
		}
		mi, vi := b.paramIdx[nd.Inputs[3]], b.paramIdx[nd.Inputs[4]]
		oldMean, oldVar := b.values[nd.Inputs[3]].n, b.values[nd.Inputs[4]].n
		b.bnUpdates[mi] = Add(MulScalar(oldMean, float64(m)), MulScalar(StopGradient(mean), float64(1-m)))
		b.bnUpdates[vi] = Add(MulScalar(oldVar, float64(m)), MulScalar(StopGradient(unbiased), float64(1-m)))
	}
	y := broadcastBinary(x, mean, Sub)
	// 1/sqrt rather than Rsqrt: the go backend has no gradient for Rsqrt.
	y = broadcastBinary(y, Reciprocal(Sqrt(AddScalar(variance, float64(eps)))), Mul)
	y = broadcastBinary(broadcastBinary(y, scale, Mul), bias, Add)
	return value{n: y, nhwc: nhwc}
}

// crossEntropy returns the per-example softmax cross-entropy of logits [B,K]
// against integer labels [B].
func crossEntropy(logits, labels *Node) *Node {
	k := logits.Shape().Dim(-1)
	oneHot := OneHot(labels, k, logits.DType())
	return Neg(ReduceSum(Mul(oneHot, LogSoftmax(logits, -1)), -1))
}

// inputShape is the shape of a batch of n examples.
func inputShape(g *nn.Graph, n int) shapes.Shape {
	return shapes.Make(dtypes.Float32, append([]int{n}, g.InputShape...)...)
}
