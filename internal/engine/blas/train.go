package blas

import (
	"fmt"
	"math"
	"slices"

	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/nn"
)

// Trainer runs optimisation steps on a Model's parameters, updating them in
// place under the model's write lock. The update rules are the GoMLX
// engine's: SGD with PyTorch's heavy-ball momentum and L2 weight decay added
// to the gradient, Adam with bias correction and decoupled weight decay.
type Trainer struct {
	m     *Model
	opt   nn.Optimizer
	train []int         // indices of the trainable parameters
	slots [][][]float32 // slots[s][j]: slot s of trainable parameter j
	step  int
}

// NewTrainer prepares training of m with opt.
func NewTrainer(m *Model, opt nn.Optimizer) (*Trainer, error) {
	switch opt.Name {
	case "sgd", "adam":
	default:
		return nil, fmt.Errorf("unknown optimizer %q (sgd, adam)", opt.Name)
	}
	opt = opt.WithDefaults()
	t := &Trainer{m: m, opt: opt, train: m.graph.Trainable()}
	t.slots = make([][][]float32, opt.Slots())
	for s := range t.slots {
		for _, i := range t.train {
			t.slots[s] = append(t.slots[s], make([]float32, m.graph.Params[i].Size()))
		}
	}
	return t, nil
}

// Step runs one optimisation step on a batch of n examples: batch norm uses
// the batch's statistics, the loss is the batch mean cross-entropy, and the
// reported loss and accuracy are those before the update.
func (t *Trainer) Step(x []float32, labels []int, n int, lr float32) (nn.StepResult, error) {
	m := t.m
	if err := m.checkBatch(x, n); err != nil {
		return nn.StepResult{}, err
	}
	if err := m.checkLabels(labels, n); err != nil {
		return nn.StepResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.plan(n, kindTrain)
	if err != nil {
		return nn.StepResult{}, err
	}
	r := &run{p: p, a: p.getArena(), x: x, params: m.params}
	defer p.putArena(r.a)
	p.forward(r)
	z := r.data(p.output)
	losses := make([]float32, n)
	crossEntropy(z, labels, 1/float64(n), losses, seed(r))
	res := nn.StepResult{Loss: meanOf(losses), Correct: countCorrect(z, labels)}
	p.backward(r)
	t.step++
	grads := make([][]float32, len(t.train))
	for j, i := range t.train {
		grads[j] = paramGrad(r, i)
	}
	t.updateAll(grads, lr)
	for _, su := range p.stats {
		copy(m.params[su.param], r.buf(su.buf))
	}
	return res, nil
}

func meanOf(v []float32) float32 {
	s := 0.0
	for _, x := range v {
		s += float64(x)
	}
	return float32(s / float64(len(v)))
}

// countCorrect counts rows of z whose first maximal entry is the label.
func countCorrect(z []float32, labels []int) int {
	k := len(z) / len(labels)
	correct := 0
	for i, y := range labels {
		row := z[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best == y {
			correct++
		}
	}
	return correct
}

// updateAll applies the optimizer to every trainable parameter. The
// parameters are laid end to end and the whole range split across the
// workers at once: one parallel region per step rather than one per
// parameter (an MLP has six, most of them small).
func (t *Trainer) updateAll(grads [][]float32, lr float32) {
	total := 0
	for _, g := range grads {
		total += len(g)
	}
	k := t.adamConsts(lr)
	parallel(t.m.workers, total, elementwiseGrain, func(_, lo, hi int) {
		start := 0
		for j, i := range t.train {
			end := start + len(grads[j])
			if a, b := max(lo, start), min(hi, end); a < b {
				t.update(j, t.m.params[i], grads[j], a-start, b-start, lr, k)
			}
			start = end
		}
	})
}

// adamConsts rounds this step's Adam constants to float32 as the GoMLX
// engine does (β and 1-β in float64 first; the bias corrections from a
// float32 power).
func (t *Trainer) adamConsts(lr float32) adamConsts {
	o := t.opt
	return adamConsts{
		b1: o.Beta1, ob1: float32(1 - float64(o.Beta1)),
		b2: o.Beta2, ob2: float32(1 - float64(o.Beta2)),
		c1:  1 - float32(math.Pow(float64(o.Beta1), float64(t.step))),
		c2:  1 - float32(math.Pow(float64(o.Beta2), float64(t.step))),
		eps: o.Epsilon, wd: o.WeightDecay, lr: lr,
	}
}

// update applies the optimizer to elements [lo, hi) of trainable parameter
// j (values w, gradient g), in float32.
func (t *Trainer) update(j int, w, g []float32, lo, hi int, lr float32, k adamConsts) {
	o := t.opt
	switch o.Name {
	case "sgd":
		wd, mom := o.WeightDecay, o.Momentum
		var vel []float32
		if mom != 0 {
			vel = t.slots[0][j]
		}
		for i := lo; i < hi; i++ {
			d := g[i]
			if wd != 0 {
				d += w[i] * wd
			}
			if vel != nil {
				vel[i] = vel[i]*mom + d
				d = vel[i]
			}
			w[i] -= lr * d
		}
	case "adam":
		ms, vs := t.slots[0][j], t.slots[1][j]
		adam(w[lo:hi], g[lo:hi], ms[lo:hi], vs[lo:hi], k)
	}
}

// Apply runs one optimizer step with the given gradients, one per
// trainable parameter by name (DP-SGD's noised average of clipped
// gradients), with the update rule of Step.
func (t *Trainer) Apply(grads map[string][]float32, lr float32) error {
	g := t.m.graph
	names := make([]string, len(t.train))
	sizes := make([]int, len(t.train))
	gs := make([][]float32, len(t.train))
	for j, i := range t.train {
		names[j], sizes[j] = g.Params[i].Name, g.Params[i].Size()
		gs[j] = grads[names[j]]
	}
	if err := engine.CheckGrads(names, sizes, grads); err != nil {
		return err
	}
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	t.step++
	t.updateAll(gs, lr)
	return nil
}

// Steps is how many steps have run, including restored ones.
func (t *Trainer) Steps() int { return t.step }

// State copies the optimizer state for a checkpoint.
func (t *Trainer) State() (nn.OptimizerState, error) {
	t.m.mu.RLock()
	defer t.m.mu.RUnlock()
	st := nn.OptimizerState{Step: t.step, Slots: map[string][][]float32{}}
	for j, i := range t.train {
		name := t.m.graph.Params[i].Name
		for s := range t.slots {
			st.Slots[name] = append(st.Slots[name], slices.Clone(t.slots[s][j]))
		}
	}
	return st, nil
}

// Restore loads optimizer state saved by State.
func (t *Trainer) Restore(st nn.OptimizerState) error {
	fresh := make([][][]float32, len(t.slots))
	for _, i := range t.train {
		p := t.m.graph.Params[i]
		got := st.Slots[p.Name]
		if len(got) != len(t.slots) {
			return fmt.Errorf("checkpoint has %d optimizer slots for %q, %s needs %d", len(got), p.Name, t.opt.Name, len(t.slots))
		}
		for s := range t.slots {
			if len(got[s]) != p.Size() {
				return fmt.Errorf("checkpoint slot %d of %q has %d values, want %d", s, p.Name, len(got[s]), p.Size())
			}
			fresh[s] = append(fresh[s], slices.Clone(got[s]))
		}
	}
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	t.slots = fresh
	t.step = st.Step
	return nil
}
