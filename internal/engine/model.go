package engine

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/bulwark-sec/bulwark/nn"
)

// MaxBatch is the largest batch run through a compiled function at once;
// bigger requests are split. It bounds memory and the number of compiled
// shapes.
const MaxBatch = 256

// Model is a compiled nn.Graph with its parameters held as engine tensors.
// It is safe for concurrent use.
type Model struct {
	graph   *nn.Graph
	classes int

	mu     sync.RWMutex
	params []*tensors.Tensor // one per graph.Params, same order

	logitsExec *Exec
	lossGrad   *Exec
	seedGrad   *Exec

	gradOnce sync.Once // ParamGradients' executable, built on first use
	gradExec *Exec
	gradErr  error

	seedParamOnce sync.Once // SeededParamGradients' executable
	seedParamExec *Exec
	seedParamErr  error
}

// Compile prepares g for execution. Every parameter must have its data.
// It builds the graph once for a batch of one, so that a graph that cannot
// run (shapes that do not fit, an unsupported op) fails here, naming the node.
func Compile(g *nn.Graph) (*Model, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	be, err := getBackend()
	if err != nil {
		return nil, err
	}
	m := &Model{graph: g}
	for _, p := range g.Params {
		if p.Data == nil {
			return nil, fmt.Errorf("parameter %q has no data", p.Name)
		}
		m.params = append(m.params, tensors.FromFlatDataAndDimensions(p.Data, p.Shape...))
	}
	np := len(g.Params)
	m.logitsExec, err = NewExec(be, func(in []*Node) *Node {
		return newBuilder(g, inference).forward(in[0], in[1:1+np])
	})
	if err != nil {
		return nil, err
	}
	m.logitsExec.SetMaxCache(64)
	m.lossGrad, err = NewExec(be, func(in []*Node) []*Node {
		x, y := in[0], in[1]
		logits := newBuilder(g, inference).forward(x, in[2:2+np])
		losses := crossEntropy(logits, y)
		grad := Gradient(ReduceAllSum(losses), x)[0]
		return []*Node{losses, grad, logits}
	})
	if err != nil {
		return nil, err
	}
	m.lossGrad.SetMaxCache(64)
	m.seedGrad, err = NewExec(be, func(in []*Node) []*Node {
		x, w := in[0], in[1]
		logits := newBuilder(g, inference).forward(x, in[2:2+np])
		grad := Gradient(ReduceAllSum(Mul(logits, w)), x)[0]
		return []*Node{grad, logits}
	})
	if err != nil {
		return nil, err
	}
	m.seedGrad.SetMaxCache(64)
	// Build once to surface shape errors now, and learn the class count.
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

func (m *Model) paramArgs() []any {
	m.mu.RLock()
	defer m.mu.RUnlock()
	args := make([]any, len(m.params))
	for i, p := range m.params {
		args[i] = p
	}
	return args
}

// Params returns a copy of the graph with the current parameter values.
func (m *Model) Params() (*nn.Graph, error) {
	g := m.graph.Clone()
	m.mu.RLock()
	defer m.mu.RUnlock()
	for i, t := range m.params {
		d, err := tensors.CopyFlatData[float32](t)
		if err != nil {
			return nil, fmt.Errorf("reading parameter %q: %w", g.Params[i].Name, err)
		}
		g.Params[i].Data = d
	}
	return g, nil
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

// Logits runs the model on n examples (x holds n*InputSize values, NCHW for
// images) and returns n*NumClasses logits.
func (m *Model) Logits(x []float32, n int) ([]float32, error) {
	if err := m.checkBatch(x, n); err != nil {
		return nil, err
	}
	params := m.paramArgs()
	var out []float32
	err := chunks(n, func(lo, hi int) error {
		xt := tensors.FromFlatDataAndDimensions(x[lo*m.InputSize():hi*m.InputSize()], inputShape(m.graph, hi-lo).Dimensions...)
		res, err := m.logitsExec.Exec(append([]any{xt}, params...)...)
		if err != nil {
			return cleanError(err)
		}
		d, err := tensors.CopyFlatData[float32](res[0])
		res[0].FinalizeAll()
		if err != nil {
			return err
		}
		out = append(out, d...)
		return nil
	})
	return out, err
}

// LossGradient returns, for n examples with integer labels, each example's
// cross-entropy loss, the gradient of that loss with respect to its input
// (same layout as x) and the logits. Because the per-example losses are
// summed before differentiating, each example's gradient is independent of
// the batch it is in.
func (m *Model) LossGradient(x []float32, labels []int, n int) (losses, grad, logits []float32, err error) {
	if err := m.checkBatch(x, n); err != nil {
		return nil, nil, nil, err
	}
	if len(labels) != n {
		return nil, nil, nil, fmt.Errorf("%d labels for %d examples", len(labels), n)
	}
	for i, y := range labels {
		if m.classes > 0 && (y < 0 || y >= m.classes) {
			return nil, nil, nil, fmt.Errorf("label %d of example %d is outside the model's %d classes", y, i, m.classes)
		}
	}
	params := m.paramArgs()
	grad = make([]float32, 0, len(x))
	err = chunks(n, func(lo, hi int) error {
		xt := tensors.FromFlatDataAndDimensions(x[lo*m.InputSize():hi*m.InputSize()], inputShape(m.graph, hi-lo).Dimensions...)
		yt := labelTensor(labels[lo:hi])
		res, err := m.lossGrad.Exec(append([]any{xt, yt}, params...)...)
		if err != nil {
			return cleanError(err)
		}
		defer finalize(res)
		l, err1 := tensors.CopyFlatData[float32](res[0])
		g, err2 := tensors.CopyFlatData[float32](res[1])
		lg, err3 := tensors.CopyFlatData[float32](res[2])
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		losses = append(losses, l...)
		grad = append(grad, g...)
		logits = append(logits, lg...)
		return nil
	})
	return losses, grad, logits, err
}

// InputGradient returns the gradient with respect to the input of
// Σ_i Σ_k dz[i,k]·logits[i,k], where seed(i, logits_i, dz_i) writes the
// weights for example i after seeing its logits (dz_i starts at zero). This
// engine runs the forward pass twice: once for the logits the seed needs,
// once inside the gradient graph.
func (m *Model) InputGradient(x []float32, n int, seed func(i int, logits, dz []float32)) (grad, logits []float32, err error) {
	logits, err = m.Logits(x, n)
	if err != nil {
		return nil, nil, err
	}
	k := m.classes
	w := make([]float32, len(logits))
	for i := 0; i < n; i++ {
		seed(i, logits[i*k:(i+1)*k], w[i*k:(i+1)*k])
	}
	params := m.paramArgs()
	grad = make([]float32, 0, len(x))
	err = chunks(n, func(lo, hi int) error {
		xt := tensors.FromFlatDataAndDimensions(x[lo*m.InputSize():hi*m.InputSize()], inputShape(m.graph, hi-lo).Dimensions...)
		wt := tensors.FromFlatDataAndDimensions(w[lo*k:hi*k], hi-lo, k)
		res, err := m.seedGrad.Exec(append([]any{xt, wt}, params...)...)
		if err != nil {
			return cleanError(err)
		}
		defer finalize(res)
		g, err := tensors.CopyFlatData[float32](res[0])
		if err != nil {
			return err
		}
		grad = append(grad, g...)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return grad, logits, nil
}

func labelTensor(labels []int) *tensors.Tensor {
	y := make([]int32, len(labels))
	for i, v := range labels {
		y[i] = int32(v)
	}
	return tensors.FromFlatDataAndDimensions(y, len(y))
}

func finalize(ts []*tensors.Tensor) {
	for _, t := range ts {
		t.FinalizeAll()
	}
}

func chunks(n int, fn func(lo, hi int) error) error {
	for lo := 0; lo < n; lo += MaxBatch {
		if err := fn(lo, min(n, lo+MaxBatch)); err != nil {
			return err
		}
	}
	return nil
}

// cleanError keeps the message of a GoMLX error and drops its stack trace.
func cleanError(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "\n"); i >= 0 {
		msg = msg[:i]
	}
	return errors.New(msg)
}
