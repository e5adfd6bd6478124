package nn

// Optimizer configures the update rule of a training run. Both engines
// implement it identically: SGD with PyTorch's heavy-ball momentum and L2
// weight decay added to the gradient; Adam with bias correction and
// decoupled weight decay (AdamW).
type Optimizer struct {
	Name        string  `json:"name"`     // "sgd" or "adam"
	Momentum    float32 `json:"momentum"` // sgd
	Beta1       float32 `json:"beta1"`    // adam (default 0.9)
	Beta2       float32 `json:"beta2"`    // adam (default 0.999)
	Epsilon     float32 `json:"epsilon"`  // adam (default 1e-8)
	WeightDecay float32 `json:"weight_decay"`
}

// WithDefaults fills unset Adam constants with the usual values.
func (o Optimizer) WithDefaults() Optimizer {
	if o.Beta1 == 0 {
		o.Beta1 = 0.9
	}
	if o.Beta2 == 0 {
		o.Beta2 = 0.999
	}
	if o.Epsilon == 0 {
		o.Epsilon = 1e-8
	}
	return o
}

// Slots is how many state tensors per parameter the optimizer keeps:
// Adam's first and second moments, SGD's velocity when it has momentum.
func (o Optimizer) Slots() int {
	switch {
	case o.Name == "adam":
		return 2
	case o.Name == "sgd" && o.Momentum != 0:
		return 1
	}
	return 0
}

// StepResult reports one training step.
type StepResult struct {
	Loss    float32 // mean cross-entropy over the batch, before the update
	Correct int     // examples the model got right, before the update
}

// OptimizerState is what a checkpoint needs to resume training exactly.
type OptimizerState struct {
	Step  int                    `json:"step"`
	Slots map[string][][]float32 `json:"-"` // per trainable parameter name: its slots in order
}

// RunningStats marks the parameters (by index) that batch norm updates
// during training: its running mean and variance.
func (g *Graph) RunningStats() map[int]bool {
	idx := map[string]int{}
	for i, p := range g.Params {
		idx[p.Name] = i
	}
	out := map[int]bool{}
	for _, n := range g.Nodes {
		if n.Op == OpBatchNorm && len(n.Inputs) == 5 {
			for _, in := range n.Inputs[3:] {
				if i, ok := idx[in]; ok && !g.Params[i].Trainable {
					out[i] = true
				}
			}
		}
	}
	return out
}
