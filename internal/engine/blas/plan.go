package blas

import (
	"fmt"
	"sync"

	"github.com/bulwark-sec/bulwark/nn"
)

// kind says what a plan computes besides the forward pass.
type kind int

const (
	kindLogits    kind = iota // forward only (inference)
	kindInputGrad             // inference forward, gradient of the loss with respect to the input
	kindParamGrad             // inference forward, gradients with respect to the trainable parameters
	kindTrain                 // batch norm on batch statistics, gradients of the trainable parameters
	// kindPerExample is kindParamGrad for DP-SGD (perexample.go): backward
	// propagates the output gradients but dense layers skip their weight
	// products and convolutions keep each example's weight gradient apart.
	kindPerExample
)

// Where a value's data lives.
const (
	inArena = iota // a buffer of the run's arena
	inInput        // the caller's input slice
	inParam        // a model parameter (index into Model.params)
)

// value is one tensor of a plan: a parameter, the input or a node's output.
// Shapes are concrete: a plan is built for one batch size.
type value struct {
	name  string
	shape []int
	size  int
	where int // inArena, inInput, inParam
	buf   int // arena buffer or parameter index
	grad  int // arena buffer holding d(loss)/d(value), -1 if not needed
}

// op is one node's forward and backward computation.
type op interface {
	base() *opBase
	// setup runs after gradient analysis and reserves what the op needs
	// beyond its output (scratch, saved statistics, partial sums).
	setup(p *plan)
	forward(r *run)
	// backward adds (or, where acc is false, writes) the gradients of the
	// inputs that need one, given the gradient of the output.
	backward(r *run)
}

// opBase is what every op shares.
type opBase struct {
	in  []int // input value ids, -1 for an absent optional input
	out int   // output value id
	// alias marks ops whose output is their first input viewed with another
	// shape (identity, flatten, reshape): no work in either direction, and
	// the gradient buffer is shared.
	alias bool
	// relu marks ops that apply a following relu to their output themselves
	// (the relu node becomes an alias): forward clamps while the output is
	// still in cache, backward masks the incoming gradient by output > 0.
	relu bool
	// nodiff marks inputs the output does not depend on differentiably
	// (batch norm's running statistics in training mode).
	nodiff []bool
	// need[i]: input i's gradient is wanted. acc[i]: it already holds another
	// consumer's contribution, so add rather than overwrite.
	need, acc []bool
}

func (b *opBase) base() *opBase { return b }

// plan is an nn.Graph compiled for one batch size and one kind of run:
// values with concrete shapes, an op per node, and the buffers a run needs.
// Plans are immutable once built; runs get their buffers from an arena.
type plan struct {
	g       *nn.Graph
	n       int
	kind    kind
	workers int

	values []value
	byName map[string]int
	ops    []op
	nodes  []*nn.Node
	input  int
	output int

	bufSizes []int // arena buffer sizes
	scratch  int   // per-worker scratch floats
	// zeroGrads lists gradient buffers no op writes (a parameter or input
	// that does not reach the output): they are cleared before backward.
	zeroGrads []int
	// stats lists the running-statistic updates of a training plan: the
	// arena buffer holding the new value of parameter param.
	stats []statUpdate
	// layers and padBuf: a kindPerExample plan's layers with trainable
	// parameters, and a buffer for an input padded to the plan's batch.
	layers []peLayer
	padBuf int

	// free holds arenas between runs. Not a sync.Pool: that one is emptied
	// by every GC, and reallocating (and page-faulting) tens of megabytes of
	// buffers then costs more than the run. At most maxFreeArenas are kept.
	mu   sync.Mutex
	free []*arena
}

// maxFreeArenas bounds the idle arenas a plan keeps for concurrent callers.
const maxFreeArenas = 4

type statUpdate struct{ param, buf int }

// arena holds the buffers of one run of a plan. Runs reuse arenas, so a
// steady state allocates nothing.
type arena struct {
	bufs    [][]float32
	scratch [][]float32 // one per worker
}

// run is one execution of a plan: its arena, input and parameters.
type run struct {
	p      *plan
	a      *arena
	x      []float32
	params [][]float32
}

func (r *run) data(v int) []float32 {
	val := &r.p.values[v]
	switch val.where {
	case inInput:
		return r.x
	case inParam:
		return r.params[val.buf]
	}
	return r.a.bufs[val.buf]
}

func (r *run) grad(v int) []float32 { return r.a.bufs[r.p.values[v].grad] }

func (r *run) scratch(w int) []float32 { return r.a.scratch[w] }

func (r *run) buf(i int) []float32 { return r.a.bufs[i] }

// newBuf reserves an arena buffer of size floats and returns its index.
func (p *plan) newBuf(size int) int {
	p.bufSizes = append(p.bufSizes, size)
	return len(p.bufSizes) - 1
}

// needScratch makes every worker's scratch at least size floats.
func (p *plan) needScratch(size int) { p.scratch = max(p.scratch, size) }

func (p *plan) shape(v int) []int { return p.values[v].shape }

func (p *plan) getArena() *arena {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		a := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return a
	}
	p.mu.Unlock()
	a := &arena{bufs: make([][]float32, len(p.bufSizes)), scratch: make([][]float32, p.workers)}
	for i, s := range p.bufSizes {
		a.bufs[i] = make([]float32, s)
	}
	for w := range a.scratch {
		a.scratch[w] = make([]float32, p.scratch)
	}
	return a
}

func (p *plan) putArena(a *arena) {
	p.mu.Lock()
	if len(p.free) < maxFreeArenas {
		p.free = append(p.free, a)
	}
	p.mu.Unlock()
}

// newPlan builds the plan of g for a batch of n. Shape errors name the node.
func newPlan(g *nn.Graph, n int, k kind, workers int) (*plan, error) {
	p := &plan{g: g, n: n, kind: k, workers: workers, byName: map[string]int{}}
	for i := range g.Params {
		prm := &g.Params[i]
		p.addValue(value{name: prm.Name, shape: prm.Shape, size: prm.Size(), where: inParam, buf: i})
	}
	inShape := append([]int{n}, g.InputShape...)
	p.input = p.addValue(value{name: g.Input, shape: inShape, size: nn.Numel(inShape), where: inInput})
	fused := fusedRelus(g)
	for i := range g.Nodes {
		nd := &g.Nodes[i]
		var o op
		var shape []int
		var err error
		if fused[i] == fusedAway {
			// The producer applies this relu; the node is a view of its output.
			x := p.byName[nd.Inputs[0]]
			o, shape = &aliasOp{opBase{in: []int{x}, alias: true}}, p.values[x].shape
		} else {
			o, shape, err = p.buildNode(nd)
			if err != nil {
				return nil, nodeError(nd, err)
			}
		}
		b := o.base()
		if fused[i] == fusesRelu {
			if f, ok := o.(reluFuser); ok && f.fuseRelu() {
				b.relu = true
			} else {
				return nil, nodeError(nd, fmt.Errorf("internal error: cannot fuse the following relu"))
			}
		}
		v := value{name: nd.Output, shape: shape, size: nn.Numel(shape), where: inArena}
		if b.alias {
			src := p.values[b.in[0]]
			v.where, v.buf = src.where, src.buf
		} else {
			v.buf = p.newBuf(v.size)
		}
		b.out = p.addValue(v)
		p.ops = append(p.ops, o)
		p.nodes = append(p.nodes, nd)
	}
	out, ok := p.byName[g.Output]
	if !ok {
		return nil, fmt.Errorf("graph output %q is never computed", g.Output)
	}
	p.output = out
	if s := p.values[out].shape; len(s) == 0 || s[0] != n {
		return nil, fmt.Errorf("graph output %q has shape %v for a batch of %d: it must have the batch as its first axis", g.Output, s, n)
	}
	p.analyseGradients()
	for _, o := range p.ops {
		o.setup(p)
	}
	if k == kindPerExample {
		layers, err := p.perExampleLayers()
		if err != nil {
			return nil, err
		}
		p.layers = layers
		p.padBuf = p.newBuf(p.values[p.input].size)
	}
	return p, nil
}

func (p *plan) addValue(v value) int {
	v.grad = -1
	p.values = append(p.values, v)
	p.byName[v.name] = len(p.values) - 1
	return len(p.values) - 1
}

// nodeError names the node that failed, as the GoMLX engine does.
func nodeError(nd *nn.Node, err error) error {
	name := nd.Name
	if name == "" {
		name = nd.Output
	}
	return fmt.Errorf("node %q (%s): %w", name, nd.Op, err)
}

// analyseGradients decides which values need a gradient buffer, which
// buffers alias, and for every op input whether its gradient is written or
// added to. Gradients flow only along paths from a wanted leaf (the input,
// or the trainable parameters) to the output.
func (p *plan) analyseGradients() {
	if p.kind == kindLogits {
		return
	}
	wants := make([]bool, len(p.values))
	switch p.kind {
	case kindInputGrad:
		wants[p.input] = true
	case kindParamGrad, kindTrain, kindPerExample:
		for i, prm := range p.g.Params {
			if prm.Trainable {
				wants[i] = true // parameters are values 0..len(Params)-1
			}
		}
	}
	// Forward: a value depends on a wanted leaf through a differentiable input.
	for _, o := range p.ops {
		b := o.base()
		for i, in := range b.in {
			if in >= 0 && wants[in] && !b.nodiffAt(i) {
				wants[b.out] = true
			}
		}
	}
	// Backward: a value reaches the output.
	reach := make([]bool, len(p.values))
	reach[p.output] = true
	for j := len(p.ops) - 1; j >= 0; j-- {
		b := p.ops[j].base()
		if !reach[b.out] {
			continue
		}
		for i, in := range b.in {
			if in >= 0 && !b.nodiffAt(i) {
				reach[in] = true
			}
		}
	}
	// Gradient buffers: leaves first (they come first in values), then node
	// outputs in order, so an alias finds its input's buffer assigned.
	aliasOf := make([]int, len(p.values))
	for i := range aliasOf {
		aliasOf[i] = -1
	}
	for _, o := range p.ops {
		if b := o.base(); b.alias {
			aliasOf[b.out] = b.in[0]
		}
	}
	for v := range p.values {
		val := &p.values[v]
		if !wants[v] || !reach[v] {
			continue
		}
		if src := aliasOf[v]; src >= 0 && p.values[src].grad >= 0 {
			val.grad = p.values[src].grad
		} else {
			val.grad = p.newBuf(val.size)
		}
	}
	// Write-or-add: walk the ops backwards as backward will; the first
	// contribution to a buffer writes it, later ones add.
	written := map[int]bool{}
	if g := p.values[p.output].grad; g >= 0 {
		written[g] = true // the loss seeds it
	}
	for j := len(p.ops) - 1; j >= 0; j-- {
		b := p.ops[j].base()
		b.need = make([]bool, len(b.in))
		b.acc = make([]bool, len(b.in))
		if p.values[b.out].grad < 0 || b.alias {
			continue
		}
		for i, in := range b.in {
			if in < 0 || b.nodiffAt(i) || p.values[in].grad < 0 {
				continue
			}
			gb := p.values[in].grad
			b.need[i] = true
			b.acc[i] = written[gb]
			written[gb] = true
		}
	}
	seen := map[int]bool{}
	for _, val := range p.values {
		if g := val.grad; g >= 0 && !written[g] && !seen[g] {
			seen[g] = true
			p.zeroGrads = append(p.zeroGrads, g)
		}
	}
}

func (b *opBase) nodiffAt(i int) bool { return i < len(b.nodiff) && b.nodiff[i] }

// hasGrad reports whether backward runs for this op.
func (p *plan) hasGrad(o op) bool {
	b := o.base()
	return !b.alias && p.values[b.out].grad >= 0
}

// forward runs every node.
func (p *plan) forward(r *run) {
	for _, o := range p.ops {
		o.forward(r)
	}
}

// backward runs the ops on gradient paths in reverse; the caller has seeded
// the gradient of the output.
func (p *plan) backward(r *run) {
	for _, g := range p.zeroGrads {
		clear(r.a.bufs[g])
	}
	for j := len(p.ops) - 1; j >= 0; j-- {
		if o := p.ops[j]; p.hasGrad(o) {
			o.backward(r)
		}
	}
}

// How fusedRelus marks nodes.
const (
	notFused  = iota
	fusesRelu // this node applies the relu that consumes its output
	fusedAway // this relu node is applied by its producer
)

// reluFuser is implemented by ops that can apply a relu to their own output
// (fuseRelu reports whether this instance can).
type reluFuser interface{ fuseRelu() bool }

// fusedRelus finds relu nodes whose input is produced by a conv, dense or
// batch norm node and consumed by nothing else (not even as the graph
// output): the producer's output buffer can then hold the relu's result,
// since no op needs the value before the relu, and the producers' own
// backward passes need only their inputs.
func fusedRelus(g *nn.Graph) []int {
	uses := map[string]int{g.Output: 1}
	producer := map[string]int{}
	for i, nd := range g.Nodes {
		for _, in := range nd.Inputs {
			uses[in]++
		}
		producer[nd.Output] = i
	}
	marks := make([]int, len(g.Nodes))
	for i, nd := range g.Nodes {
		if nd.Op != nn.OpRelu || len(nd.Inputs) != 1 {
			continue
		}
		j, ok := producer[nd.Inputs[0]]
		if !ok || uses[nd.Inputs[0]] != 1 || marks[j] != notFused {
			continue
		}
		switch g.Nodes[j].Op {
		case nn.OpConv, nn.OpDense, nn.OpBatchNorm:
			marks[j], marks[i] = fusesRelu, fusedAway
		}
	}
	return marks
}
