package engine

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
)

// CheckGrads checks Trainer.Apply's argument: exactly one gradient for
// each trainable parameter names[j], of sizes[j] values.
func CheckGrads(names []string, sizes []int, grads map[string][]float32) error {
	if len(grads) != len(names) {
		return fmt.Errorf("%d gradients for %d trainable parameters", len(grads), len(names))
	}
	for j, name := range names {
		d, ok := grads[name]
		if !ok {
			return fmt.Errorf("no gradient for parameter %q", name)
		}
		if len(d) != sizes[j] {
			return fmt.Errorf("gradient of %q has %d values, want %d", name, len(d), sizes[j])
		}
	}
	return nil
}

// Apply runs one optimizer step with the given gradients: the same update
// rule as Step (compiled once), with grads in place of a batch's.
func (t *ModelTrainer) Apply(grads map[string][]float32, lr float32) error {
	m := t.m
	g := m.graph
	var names []string
	var sizes []int
	for _, i := range t.train {
		names = append(names, g.Params[i].Name)
		sizes = append(sizes, g.Params[i].Size())
	}
	if err := CheckGrads(names, sizes, grads); err != nil {
		return err
	}
	nt := len(t.train)
	t.applyOnce.Do(func() {
		be, err := getBackend()
		if err != nil {
			t.applyErr = err
			return
		}
		// Inputs: lr, step, trainable params (nt), gradients (nt), slots.
		// Outputs: new trainable params, new slots.
		t.applyExec, t.applyErr = NewExec(be, func(in []*Node) []*Node {
			newP, newS := t.update(in[2:2+nt], in[2+nt:2+2*nt], in[2+2*nt:], in[0], in[1])
			return append(newP, newS...)
		})
	})
	if t.applyErr != nil {
		return t.applyErr
	}
	t.step++
	args := []any{tensors.FromScalar(lr), tensors.FromScalar(float32(t.step))}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, i := range t.train {
		args = append(args, m.params[i])
	}
	for j, i := range t.train {
		args = append(args, tensors.FromFlatDataAndDimensions(grads[names[j]], g.Params[i].Shape...))
	}
	for _, s := range t.slots {
		for _, v := range s {
			args = append(args, v)
		}
	}
	res, err := t.applyExec.Exec(args...)
	if err != nil {
		t.step--
		return cleanError(err)
	}
	var old []*tensors.Tensor
	k := 0
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
	finalize(old)
	return nil
}
