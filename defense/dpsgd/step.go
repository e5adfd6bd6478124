package dpsgd

import (
	"fmt"
	"math"

	"github.com/bulwark-sec/bulwark/data"
	"github.com/bulwark-sec/bulwark/internal/engine"
)

// stepper takes DP-SGD steps.
type stepper struct {
	cfg   Config
	s     *schedule
	net   engine.Net
	tr    engine.Trainer
	set   *data.Dataset
	rnd   randomness
	names []string // trainable parameters, in graph order
	sizes []int

	idx []int
	xb  []float32
	yb  []int
}

// sample returns the examples of a step: Poisson sampling, or the
// inEpoch-th batch of the epoch's permutation.
func (st *stepper) sample(step, inEpoch int, perm []int) []int {
	if perm == nil {
		st.idx = st.rnd.poisson(st.s.n, st.s.q, step, st.idx)
		return st.idx
	}
	b := st.cfg.LogicalBatch
	return perm[min(len(perm), inEpoch*b):min(len(perm), (inEpoch+1)*b)]
}

type stepResult struct {
	loss    float64 // summed over the batch
	correct int
}

// step is one DP-SGD update on the examples idx: the clipped gradient sum
// over physical batches, plus N(0, σ²C²) per coordinate, over the expected
// batch size, applied by the optimizer.
func (st *stepper) step(step int, idx []int, lr float32) (stepResult, error) {
	var r stepResult
	sums, err := st.clippedSum(idx, &r)
	if err != nil {
		return r, err
	}
	st.rnd.noisyMean(sums, st.s.sigma*st.cfg.ClipNorm, st.cfg.LogicalBatch, step)
	grads := make(map[string][]float32, len(sums))
	for j, name := range st.names {
		grads[name] = sums[j]
	}
	return r, st.tr.Apply(grads, lr)
}

// clippedSum is Σ_i clip(∇L_i) over idx, per trainable parameter.
func (st *stepper) clippedSum(idx []int, r *stepResult) ([][]float32, error) {
	sums := make([][]float32, len(st.names))
	for j, n := range st.sizes {
		sums[j] = make([]float32, n)
	}
	pb := st.cfg.PhysicalBatch
	for lo := 0; lo < len(idx); lo += pb {
		chunk := idx[lo:min(len(idx), lo+pb)]
		st.xb, st.yb = st.xb[:0], st.yb[:0]
		for _, i := range chunk {
			st.xb = append(st.xb, st.set.Example(i)...)
			st.yb = append(st.yb, st.set.Y[i])
		}
		c, err := engine.ClippedGradientSum(st.net, st.xb, st.yb, len(chunk), st.cfg.ClipNorm, st.cfg.PerLayer)
		if err != nil {
			return nil, err
		}
		for _, l := range c.Losses {
			if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
				return nil, fmt.Errorf("training diverged (loss %v); lower the learning rate", l)
			}
			r.loss += float64(l)
		}
		r.correct += c.Correct
		for j, name := range st.names {
			if lo == 0 {
				sums[j] = c.Sum[name]
			} else {
				addTo(sums[j], c.Sum[name])
			}
		}
	}
	return sums, nil
}

func addTo(dst, src []float32) {
	for i, v := range src {
		dst[i] += v
	}
}
