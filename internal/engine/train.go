package engine

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/bulwark-sec/bulwark/nn"
)

// ModelTrainer runs optimisation steps on a Model's parameters. The update rule
// runs inside the compiled step, so a step is one call into the engine; the
// state (parameters, optimizer slots, running statistics) stays in engine
// tensors between steps.
type ModelTrainer struct {
	m     *Model
	opt   nn.Optimizer
	train []int // indices of trainable params
	state []int // indices of running statistics (non-trainable, updated in training)
	slots [][]*tensors.Tensor
	step  int
	exec  *Exec

	applyOnce sync.Once // Apply's executable, built on first use
	applyExec *Exec
	applyErr  error
}

// NewTrainer prepares training of m with opt.
func NewTrainer(m *Model, opt nn.Optimizer) (*ModelTrainer, error) {
	switch opt.Name {
	case "sgd", "adam":
	default:
		return nil, fmt.Errorf("unknown optimizer %q (sgd, adam)", opt.Name)
	}
	opt = opt.WithDefaults()
	t := &ModelTrainer{m: m, opt: opt}
	g := m.graph
	for i, p := range g.Params {
		if p.Trainable {
			t.train = append(t.train, i)
		}
	}
	bnStats := g.RunningStats()
	for i := range g.Params {
		if bnStats[i] {
			t.state = append(t.state, i)
		}
	}
	nSlots := opt.Slots()
	t.slots = make([][]*tensors.Tensor, nSlots)
	for s := range nSlots {
		for _, i := range t.train {
			t.slots[s] = append(t.slots[s], tensors.FromFlatDataAndDimensions(make([]float32, g.Params[i].Size()), g.Params[i].Shape...))
		}
	}
	be, err := getBackend()
	if err != nil {
		return nil, err
	}
	np, nt := len(g.Params), len(t.train)
	// Inputs: x, y, lr, step, params..., slots (nSlots*nt)...
	// Outputs: mean loss, correct count, new trainable params..., new slots..., new running stats...
	t.exec, err = NewExec(be, func(in []*Node) []*Node {
		x, y, lr, stepN := in[0], in[1], in[2], in[3]
		params := in[4 : 4+np]
		slotIn := in[4+np:]
		b := newBuilder(g, training)
		logits := b.forward(x, params)
		loss := ReduceAllMean(crossEntropy(logits, y))
		wrt := make([]*Node, nt)
		for j, i := range t.train {
			wrt[j] = params[i]
		}
		grads := Gradient(loss, wrt...)
		correct := ReduceAllSum(ConvertDType(Equal(ArgMax(logits, -1, y.DType()), y), x.DType()))
		out := []*Node{loss, correct}
		newP, newS := t.update(wrt, grads, slotIn, lr, stepN)
		out = append(out, newP...)
		out = append(out, newS...)
		for _, i := range t.state {
			out = append(out, b.bnUpdates[i])
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// update builds the optimizer step. Weight decay is L2 added to the gradient
// for SGD (as torch.optim.SGD) and decoupled for Adam (as AdamW).
func (t *ModelTrainer) update(params, grads, slots []*Node, lr, stepN *Node) (newP, newS []*Node) {
	o := t.opt
	nt := len(params)
	switch o.Name {
	case "sgd":
		for j, p := range params {
			g := grads[j]
			if o.WeightDecay != 0 {
				g = Add(g, MulScalar(p, float64(o.WeightDecay)))
			}
			if o.Momentum != 0 {
				v := Add(MulScalar(slots[j], float64(o.Momentum)), g)
				newS = append(newS, v)
				g = v
			}
			newP = append(newP, Sub(p, Mul(lr, g)))
		}
	case "adam":
		b1, b2 := float64(o.Beta1), float64(o.Beta2)
		// Bias corrections 1-β^t computed in the graph from the step count.
		c1 := OneMinus(Pow(Scalar(stepN.Graph(), stepN.DType(), b1), stepN))
		c2 := OneMinus(Pow(Scalar(stepN.Graph(), stepN.DType(), b2), stepN))
		ms, vs := make([]*Node, nt), make([]*Node, nt)
		for j, p := range params {
			g := grads[j]
			m := Add(MulScalar(slots[j], b1), MulScalar(g, 1-b1))
			v := Add(MulScalar(slots[nt+j], b2), MulScalar(Square(g), 1-b2))
			ms[j], vs[j] = m, v
			upd := Div(Div(m, c1), AddScalar(Sqrt(Div(v, c2)), float64(o.Epsilon)))
			if o.WeightDecay != 0 {
				upd = Add(upd, MulScalar(p, float64(o.WeightDecay)))
			}
			newP = append(newP, Sub(p, Mul(lr, upd)))
		}
		newS = append(ms, vs...)
	}
	return newP, newS
}

// Step runs one optimisation step on a batch of n examples.
func (t *ModelTrainer) Step(x []float32, labels []int, n int, lr float32) (nn.StepResult, error) {
	m := t.m
	if err := m.checkBatch(x, n); err != nil {
		return nn.StepResult{}, err
	}
	if len(labels) != n {
		return nn.StepResult{}, fmt.Errorf("%d labels for %d examples", len(labels), n)
	}
	for i, y := range labels {
		if y < 0 || y >= m.classes {
			return nn.StepResult{}, fmt.Errorf("label %d of example %d is outside the model's %d classes", y, i, m.classes)
		}
	}
	t.step++
	args := []any{
		tensors.FromFlatDataAndDimensions(x, inputShape(m.graph, n).Dimensions...),
		labelTensor(labels),
		tensors.FromScalar(lr),
		tensors.FromScalar(float32(t.step)),
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.params {
		args = append(args, p)
	}
	for _, s := range t.slots {
		for _, v := range s {
			args = append(args, v)
		}
	}
	res, err := t.exec.Exec(args...)
	if err != nil {
		t.step--
		return nn.StepResult{}, cleanError(err)
	}
	loss := tensors.ToScalar[float32](res[0])
	correct := tensors.ToScalar[float32](res[1])
	finalize(res[:2])
	k := 2
	var old []*tensors.Tensor
	for _, i := range t.train {
		old = append(old, m.params[i])
		m.params[i] = res[k]
		k++
	}
	for s := range t.slots {
		for j := range t.slots[s] {
			old = append(old, t.slots[s][j])
			t.slots[s][j] = res[k]
			k++
		}
	}
	for _, i := range t.state {
		old = append(old, m.params[i])
		m.params[i] = res[k]
		k++
	}
	finalize(old)
	return nn.StepResult{Loss: loss, Correct: int(correct)}, nil
}

// Steps is how many steps have run, including restored ones.
func (t *ModelTrainer) Steps() int { return t.step }

// State copies the optimizer state for a checkpoint.
func (t *ModelTrainer) State() (nn.OptimizerState, error) {
	st := nn.OptimizerState{Step: t.step, Slots: map[string][][]float32{}}
	for j, i := range t.train {
		name := t.m.graph.Params[i].Name
		for s := range t.slots {
			d, err := tensors.CopyFlatData[float32](t.slots[s][j])
			if err != nil {
				return st, err
			}
			st.Slots[name] = append(st.Slots[name], d)
		}
	}
	return st, nil
}

// Restore loads optimizer state saved by State.
func (t *ModelTrainer) Restore(st nn.OptimizerState) error {
	for j, i := range t.train {
		p := t.m.graph.Params[i]
		got := st.Slots[p.Name]
		if len(got) != len(t.slots) {
			return fmt.Errorf("checkpoint has %d optimizer slots for %q, %s needs %d", len(got), p.Name, t.opt.Name, len(t.slots))
		}
		for s := range t.slots {
			if len(got[s]) != p.Size() {
				return fmt.Errorf("checkpoint slot %d of %q has %d values, want %d", s, p.Name, len(got[s]), p.Size())
			}
			t.slots[s][j] = tensors.FromFlatDataAndDimensions(slices.Clone(got[s]), p.Shape...)
		}
	}
	t.step = st.Step
	return nil
}

// SetParams replaces the model's parameter values (for resuming), checking
// shapes.
func (m *Model) SetParams(g *nn.Graph) error {
	if len(g.Params) != len(m.graph.Params) {
		return fmt.Errorf("%d parameters, the model has %d", len(g.Params), len(m.graph.Params))
	}
	var ts []*tensors.Tensor
	for i, p := range g.Params {
		q := m.graph.Params[i]
		if p.Name != q.Name || !slices.Equal(p.Shape, q.Shape) || len(p.Data) != q.Size() {
			return fmt.Errorf("parameter %d is %q %v, the model has %q %v", i, p.Name, p.Shape, q.Name, q.Shape)
		}
		ts = append(ts, tensors.FromFlatDataAndDimensions(slices.Clone(p.Data), p.Shape...))
	}
	m.mu.Lock()
	m.params = ts
	m.mu.Unlock()
	return nil
}

// ParamGradients returns the gradient of the summed cross-entropy of n
// examples with respect to every trainable parameter, keyed by name
// (inference-mode forward pass). Tests check it against finite differences.
func (m *Model) ParamGradients(x []float32, labels []int, n int) (map[string][]float32, error) {
	if err := m.checkBatch(x, n); err != nil {
		return nil, err
	}
	e, err := m.paramGradExec(&m.gradOnce, &m.gradExec, &m.gradErr, func(logits, labels *Node) *Node {
		return ReduceAllSum(crossEntropy(logits, labels))
	})
	if err != nil {
		return nil, err
	}
	return m.runParamGrad(e, x, n, labelTensor(labels))
}

// SeededParamGradients returns the gradient of Σ_i Σ_k dz[i,k]·logits[i,k]
// with respect to every trainable parameter, where seed(i, logits_i, dz_i)
// chooses example i's weights from its logits, and the logits
// (inference-mode forward pass). The logits are computed first, then one
// executable takes the weights as an input.
func (m *Model) SeededParamGradients(x []float32, n int, seed func(i int, logits, dz []float32)) (map[string][]float32, []float32, error) {
	logits, err := m.Logits(x, n)
	if err != nil {
		return nil, nil, err
	}
	k := m.classes
	w := make([]float32, len(logits))
	for i := 0; i < n; i++ {
		seed(i, logits[i*k:(i+1)*k], w[i*k:(i+1)*k])
	}
	e, err := m.paramGradExec(&m.seedParamOnce, &m.seedParamExec, &m.seedParamErr, func(logits, w *Node) *Node {
		return ReduceAllSum(Mul(logits, w))
	})
	if err != nil {
		return nil, nil, err
	}
	out, err := m.runParamGrad(e, x, n, tensors.FromFlatDataAndDimensions(w, n, k))
	return out, logits, err
}

// paramGradExec compiles, once per model (and caches per batch shape, like
// the other executables: audits call these in loops), the executable that
// takes (x, aux, params...) and returns the gradient of loss(logits, aux)
// with respect to every trainable parameter.
func (m *Model) paramGradExec(once *sync.Once, exec **Exec, errp *error, loss func(logits, aux *Node) *Node) (*Exec, error) {
	g := m.graph
	train := g.Trainable()
	once.Do(func() {
		be, err := getBackend()
		if err != nil {
			*errp = err
			return
		}
		np := len(g.Params)
		*exec, *errp = NewExec(be, func(in []*Node) []*Node {
			params := in[2 : 2+np]
			logits := newBuilder(g, inference).forward(in[0], params)
			wrt := make([]*Node, len(train))
			for j, i := range train {
				wrt[j] = params[i]
			}
			return Gradient(loss(logits, in[1]), wrt...)
		})
	})
	return *exec, *errp
}

// runParamGrad runs a paramGradExec executable on n examples and returns
// the gradients by parameter name.
func (m *Model) runParamGrad(e *Exec, x []float32, n int, aux *tensors.Tensor) (map[string][]float32, error) {
	g := m.graph
	args := append([]any{tensors.FromFlatDataAndDimensions(x, inputShape(g, n).Dimensions...), aux}, m.paramArgs()...)
	res, err := e.Exec(args...)
	if err != nil {
		return nil, cleanError(err)
	}
	defer finalize(res)
	out := map[string][]float32{}
	var errs []error
	for j, i := range g.Trainable() {
		d, err := tensors.CopyFlatData[float32](res[j])
		errs = append(errs, err)
		out[g.Params[i].Name] = d
	}
	return out, errors.Join(errs...)
}
