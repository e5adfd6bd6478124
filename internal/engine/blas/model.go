// Package blas is a second CPU engine for nn.Graph: hand-written forward
// and backward passes over NCHW float32 tensors, with every matrix product
// done by OpenBLAS's cblas_sgemm through cgo. It has the same methods as the
// GoMLX engine (internal/engine) and reproduces its semantics exactly, which
// the tests check op by op and architecture by architecture.
//
// A graph is compiled into a plan per batch size and kind of run (logits,
// input gradient, parameter gradients, training step): concrete shapes, one
// op per node, and the list of buffers a run needs. Runs take their buffers
// from a per-plan pool of arenas, so repeated calls allocate almost nothing.
//
// Layout: values stay in the graph's logical layout (NCHW). A convolution
// is one sgemm per image, W[O, C·kh·kw] × im2col[C·kh·kw, Ho·Wo], whose
// result is already the NCHW output image, so no op ever transposes
// activations.
//
// Threading: OpenBLAS runs single-threaded and the engine splits each op
// across GOMAXPROCS goroutines itself (parallel.go has the numbers).
//
// Semantics follow the GoMLX engine (checked by the tests), with one
// deliberate difference: when several inputs of a max-pool window tie for
// the maximum, the gradient goes to the first of them (row-major), as in
// PyTorch and in the GoMLX engine's general pooling path, where that
// engine's kernel == stride fast path gives each tied input the full
// gradient.
package blas

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/bulwark-sec/bulwark/nn"
)

// MaxBatch is the largest batch one plan runs; Logits, LossGradient and
// ParamGradients split bigger requests (results do not depend on the split:
// inference treats examples independently).
const MaxBatch = 256

// Model is a compiled nn.Graph and its current parameters. It is safe for
// concurrent use: runs hold a read lock on the parameters, a training step
// the write lock.
type Model struct {
	graph   *nn.Graph
	classes int
	workers int

	mu     sync.RWMutex
	params [][]float32 // one per graph.Params, same order; owned by the model

	planMu sync.Mutex
	plans  map[planKey]*plan
}

type planKey struct {
	n    int
	kind kind
}

// maxPlans bounds the plan cache; past it the cache starts over.
const maxPlans = 24

// Compile prepares g for execution. Every parameter must have its data. It
// runs the graph once on a batch of one, so that a graph that cannot run
// (shapes that do not fit, an unsupported op) fails here, naming the node.
func Compile(g *nn.Graph) (*Model, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	m := &Model{graph: g, workers: defaultWorkers(), plans: map[planKey]*plan{}}
	for _, p := range g.Params {
		if p.Data == nil {
			return nil, fmt.Errorf("parameter %q has no data", p.Name)
		}
		m.params = append(m.params, slices.Clone(p.Data))
	}
	probe := make([]float32, nn.Numel(g.InputShape))
	out, err := m.Logits(probe, 1)
	if err != nil {
		return nil, err
	}
	m.classes = len(out)
	return m, nil
}

// Graph returns the graph the model was compiled from. Its parameter data is
// the data at compile time; use Params for the current values.
func (m *Model) Graph() *nn.Graph { return m.graph }

// NumClasses is the size of the logits vector.
func (m *Model) NumClasses() int { return m.classes }

// InputSize is the number of values in one example.
func (m *Model) InputSize() int { return nn.Numel(m.graph.InputShape) }

// Params returns a copy of the graph with the current parameter values.
func (m *Model) Params() (*nn.Graph, error) {
	g := m.graph.Clone()
	m.mu.RLock()
	defer m.mu.RUnlock()
	for i, d := range m.params {
		g.Params[i].Data = slices.Clone(d)
	}
	return g, nil
}

// SetParams replaces the model's parameter values (for resuming), checking
// names and shapes.
func (m *Model) SetParams(g *nn.Graph) error {
	if len(g.Params) != len(m.graph.Params) {
		return fmt.Errorf("%d parameters, the model has %d", len(g.Params), len(m.graph.Params))
	}
	ps := make([][]float32, len(g.Params))
	for i, p := range g.Params {
		q := m.graph.Params[i]
		if p.Name != q.Name || !slices.Equal(p.Shape, q.Shape) || len(p.Data) != q.Size() {
			return fmt.Errorf("parameter %d is %q %v, the model has %q %v", i, p.Name, p.Shape, q.Name, q.Shape)
		}
		ps[i] = slices.Clone(p.Data)
	}
	m.mu.Lock()
	m.params = ps
	m.mu.Unlock()
	return nil
}

// plan returns the cached plan for a batch of n, building it on first use.
func (m *Model) plan(n int, k kind) (*plan, error) {
	m.planMu.Lock()
	defer m.planMu.Unlock()
	key := planKey{n, k}
	if p, ok := m.plans[key]; ok {
		return p, nil
	}
	p, err := newPlan(m.graph, n, k, m.workers)
	if err != nil {
		return nil, err
	}
	if len(m.plans) >= maxPlans {
		clear(m.plans)
	}
	m.plans[key] = p
	return p, nil
}

func (m *Model) checkBatch(x []float32, n int) error {
	if n <= 0 {
		return fmt.Errorf("batch of %d examples", n)
	}
	if len(x) != n*m.InputSize() {
		return fmt.Errorf("input has %d values, %d examples of shape %v need %d", len(x), n, m.graph.InputShape, n*m.InputSize())
	}
	return nil
}

func (m *Model) checkLabels(labels []int, n int) error {
	if len(labels) != n {
		return fmt.Errorf("%d labels for %d examples", len(labels), n)
	}
	for i, y := range labels {
		if y < 0 || y >= m.classes {
			return fmt.Errorf("label %d of example %d is outside the model's %d classes", y, i, m.classes)
		}
	}
	return nil
}

// chunks calls fn on [lo, hi) pieces of at most MaxBatch examples.
func chunks(n int, fn func(lo, hi int) error) error {
	for lo := 0; lo < n; lo += MaxBatch {
		if err := fn(lo, min(n, lo+MaxBatch)); err != nil {
			return err
		}
	}
	return nil
}

// exec runs a plan of kind k on examples [lo, hi) of x, with the
// parameters read-locked by the caller, and calls use with the finished run
// before its arena goes back to the pool.
func (m *Model) exec(k kind, x []float32, lo, hi int, use func(r *run) error) error {
	p, err := m.plan(hi-lo, k)
	if err != nil {
		return err
	}
	r := &run{p: p, a: p.getArena(), x: x[lo*m.InputSize() : hi*m.InputSize()], params: m.params}
	defer p.putArena(r.a)
	p.forward(r)
	return use(r)
}

// Logits runs the model on n examples (x holds n*InputSize values, NCHW for
// images) and returns n*NumClasses logits.
func (m *Model) Logits(x []float32, n int) ([]float32, error) {
	if err := m.checkBatch(x, n); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []float32
	err := chunks(n, func(lo, hi int) error {
		return m.exec(kindLogits, x, lo, hi, func(r *run) error {
			out = append(out, r.data(r.p.output)...)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LossGradient returns, for n examples with integer labels, each example's
// cross-entropy loss, the gradient of the summed loss with respect to the
// input (same layout as x) and the logits. Each example's gradient is
// independent of the batch it is in.
func (m *Model) LossGradient(x []float32, labels []int, n int) (losses, grad, logits []float32, err error) {
	if err := m.checkBatch(x, n); err != nil {
		return nil, nil, nil, err
	}
	if err := m.checkLabels(labels, n); err != nil {
		return nil, nil, nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	losses = make([]float32, n)
	grad = make([]float32, len(x))
	logits = make([]float32, 0, n*m.classes)
	err = chunks(n, func(lo, hi int) error {
		return m.exec(kindInputGrad, x, lo, hi, func(r *run) error {
			z := r.data(r.p.output)
			logits = append(logits, z...)
			crossEntropy(z, labels[lo:hi], 1, losses[lo:hi], seed(r))
			r.p.backward(r)
			copy(grad[lo*m.InputSize():hi*m.InputSize()], r.grad(r.p.input))
			return nil
		})
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return losses, grad, logits, nil
}

// InputGradient returns the gradient with respect to the input of
// Σ_i Σ_k dz[i,k]·logits[i,k], where seed(i, logits_i, dz_i) writes the
// weights dz_i for example i after seeing its logits (dz_i starts at zero).
// One forward and one backward pass: attacks use it for any loss built on
// the logits (margins, DLR, one logit difference).
func (m *Model) InputGradient(x []float32, n int, seedFn func(i int, logits, dz []float32)) (grad, logits []float32, err error) {
	if err := m.checkBatch(x, n); err != nil {
		return nil, nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	k := m.classes
	grad = make([]float32, len(x))
	logits = make([]float32, 0, n*k)
	err = chunks(n, func(lo, hi int) error {
		return m.exec(kindInputGrad, x, lo, hi, func(r *run) error {
			z := r.data(r.p.output)
			logits = append(logits, z...)
			dz := seed(r)
			if dz == nil {
				return nil
			}
			clear(dz)
			for i := lo; i < hi; i++ {
				j := i - lo
				seedFn(i, z[j*k:(j+1)*k], dz[j*k:(j+1)*k])
			}
			r.p.backward(r)
			copy(grad[lo*m.InputSize():hi*m.InputSize()], r.grad(r.p.input))
			return nil
		})
	})
	if err != nil {
		return nil, nil, err
	}
	return grad, logits, nil
}

// paramGrad is the gradient of parameter i (parameter i is value i), or
// zeros when the parameter does not reach the output.
func paramGrad(r *run, i int) []float32 {
	if r.p.values[i].grad < 0 {
		return make([]float32, r.p.values[i].size)
	}
	return r.grad(i)
}

// seed is the buffer that receives d(loss)/d(logits), or nil when nothing
// wanted depends on the output.
func seed(r *run) []float32 {
	if r.p.values[r.p.output].grad < 0 {
		return nil
	}
	return r.grad(r.p.output)
}

// ParamGradients returns the gradient of the summed cross-entropy of n
// examples with respect to every trainable parameter, keyed by name
// (inference-mode forward pass).
func (m *Model) ParamGradients(x []float32, labels []int, n int) (map[string][]float32, error) {
	if err := m.checkBatch(x, n); err != nil {
		return nil, err
	}
	if err := m.checkLabels(labels, n); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := map[string][]float32{}
	losses := make([]float32, n)
	err := chunks(n, func(lo, hi int) error {
		return m.exec(kindParamGrad, x, lo, hi, func(r *run) error {
			crossEntropy(r.data(r.p.output), labels[lo:hi], 1, losses[lo:hi], seed(r))
			r.p.backward(r)
			m.addParamGrads(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SeededParamGradients returns the gradient with respect to every
// trainable parameter of Σ_i Σ_k dz[i,k]·logits[i,k], where seed(i,
// logits_i, dz_i) writes example i's weights dz_i after seeing its logits
// (dz_i starts at zero), and the logits. It is InputGradient's counterpart
// for parameters: TRADES builds its KL term on it.
func (m *Model) SeededParamGradients(x []float32, n int, seedFn func(i int, logits, dz []float32)) (map[string][]float32, []float32, error) {
	if err := m.checkBatch(x, n); err != nil {
		return nil, nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	k := m.classes
	out := map[string][]float32{}
	logits := make([]float32, 0, n*k)
	err := chunks(n, func(lo, hi int) error {
		return m.exec(kindParamGrad, x, lo, hi, func(r *run) error {
			z := r.data(r.p.output)
			logits = append(logits, z...)
			dz := seed(r)
			if dz == nil {
				return nil
			}
			clear(dz)
			for i := lo; i < hi; i++ {
				j := i - lo
				seedFn(i, z[j*k:(j+1)*k], dz[j*k:(j+1)*k])
			}
			r.p.backward(r)
			m.addParamGrads(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, nil, err
	}
	for _, i := range m.graph.Trainable() { // an output no parameter reaches
		if name := m.graph.Params[i].Name; out[name] == nil {
			out[name] = make([]float32, m.graph.Params[i].Size())
		}
	}
	return out, logits, nil
}

// addParamGrads adds the trainable parameters' gradients of the run r to
// out (by name), cloning them on first sight: chunks of a batch add up.
func (m *Model) addParamGrads(out map[string][]float32, r *run) {
	for _, i := range m.graph.Trainable() {
		g := paramGrad(r, i)
		name := m.graph.Params[i].Name
		if sum, ok := out[name]; ok {
			addTo(sum, g)
		} else {
			out[name] = slices.Clone(g)
		}
	}
}

// crossEntropy computes, for logits z [n, K] and labels, each example's
// softmax cross-entropy into losses and, when dz is not nil, the gradient of
// scale·Σ losses with respect to z: scale·(softmax(z) - onehot(label)). It
// works in float64 so the log-sum-exp loses nothing.
func crossEntropy(z []float32, labels []int, scale float64, losses, dz []float32) {
	n := len(labels)
	k := len(z) / n
	for i, y := range labels {
		row := z[i*k : (i+1)*k]
		mx := float64(row[0])
		for _, v := range row {
			mx = max(mx, float64(v))
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(float64(v) - mx)
		}
		lse := mx + math.Log(s)
		losses[i] = float32(lse - float64(row[y]))
		if dz == nil {
			continue
		}
		g := dz[i*k : (i+1)*k]
		for j, v := range row {
			p := math.Exp(float64(v) - lse)
			if j == y {
				p--
			}
			g[j] = float32(scale * p)
		}
	}
}
