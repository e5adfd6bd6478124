// Package dpsgd trains a classifier with differentially private SGD (Abadi
// et al. 2016, "Deep Learning with Differential Privacy"): every step
// samples a batch by Poisson sampling, clips each example's gradient to
// norm C, adds Gaussian noise of standard deviation σ·C to the sum and
// hands the noisy average to the optimizer. The privacy accountant
// (privacy/accountant) turns (q, σ, steps, δ) into the ε of the guarantee,
// which the model's metadata records (model.Privacy).
//
// The recipe follows Opacus (Yousefpour et al. 2021): the noisy sum is
// divided by the expected batch size q·N, not by the sampled one (which
// would leak the batch size); batch norm is refused, since it mixes the
// examples of a batch; a logical batch is accumulated from physical ones.
//
// What the guarantee covers: the training examples (the training split
// minus the validation part, when ValFraction > 0), under add-or-remove-one
// adjacency. The validation part is never trained on; it is only evaluated
// after each epoch for the report, and the final model is always the last
// one: selecting an epoch by validation loss is not done (with a held-out
// validation set it would not leak the training data, but the recorded
// steps must be the steps taken). The per-epoch training loss and accuracy
// in the result are computed on the sampled batches without noise: they
// are diagnostics for the operator and are not written to the model file.
package dpsgd

import (
	"fmt"
	"math"

	"github.com/bulwark-sec/bulwark/model"
	"github.com/bulwark-sec/bulwark/privacy/accountant"
	"github.com/bulwark-sec/bulwark/train"
)

// Sampling modes.
const (
	// Poisson includes every example in every step independently with
	// probability q = LogicalBatch/N: what the accountants analyse.
	Poisson = "poisson"
	// Shuffle takes fixed-size batches from a permutation per epoch, as
	// ordinary training does. The accountants assume Poisson sampling, so
	// the recorded ε does not formally hold for it; the record says so.
	Shuffle = "shuffle"
)

// Config is a DP-SGD run. Zero values mean the defaults noted.
type Config struct {
	// Train holds the architecture, epochs, optimizer, learning rate and
	// schedule, seed, engine and validation fraction. BatchSize is the
	// logical batch when LogicalBatch is 0. Patience must be 0 (there is
	// no early stopping) and Defense nil.
	Train train.Config `json:"train"`
	// NoiseMultiplier σ: the noise added to the sum of clipped gradients
	// has standard deviation σ·ClipNorm per coordinate. 0 with
	// TargetEpsilon > 0 calibrates σ to reach that ε.
	NoiseMultiplier float64 `json:"noise_multiplier"`
	TargetEpsilon   float64 `json:"target_epsilon,omitempty"`
	// Delta δ of the guarantee; it must be below 1/N. 0 picks the largest
	// power of ten below 1/N (1e-5 for 60000 examples).
	Delta float64 `json:"delta"`
	// ClipNorm C bounds each example's gradient norm.
	ClipNorm float64 `json:"clip_norm"`
	// PerLayer clips each layer (a dense or conv layer's weight and bias)
	// to C/√L on its own, L the number of layers, instead of the whole
	// gradient to C; the whole gradient's norm is still at most C, so the
	// noise and the guarantee are the same.
	PerLayer bool `json:"per_layer"`
	// Sampling is Poisson (default) or Shuffle.
	Sampling string `json:"sampling"`
	// LogicalBatch is the expected batch size q·N (Train.BatchSize when 0).
	LogicalBatch int `json:"logical_batch"`
	// PhysicalBatch bounds the examples per engine call; a logical batch
	// is accumulated from several (default 256).
	PhysicalBatch int `json:"physical_batch"`
	// SecureNoise draws the noise and the samples from ChaCha8 generators
	// seeded from crypto/rand (noise.go) instead of from the seed: runs are
	// then not reproducible, which is what a deployment wants.
	SecureNoise bool `json:"secure_noise"`
	// Accountant is an accountant.Kind ("rdp", the default, "rdp-classic",
	// "pld").
	Accountant string `json:"accountant"`
	// Resume continues from the checkpoint of an earlier run with the same
	// settings and output (train.CheckpointPath).
	Resume bool `json:"-"`
}

// Defaults are a DP-SGD run's usual settings: Adam at 1e-3 with a constant
// rate, logical batch 256, C = 1, σ = 1, Poisson sampling, the RDP
// accountant, 10% of the data held out for reporting.
func Defaults(arch string) Config {
	t := train.Defaults(arch)
	t.BatchSize = 256
	t.Patience = 0
	t.Schedule = "constant"
	return Config{Train: t, NoiseMultiplier: 1, ClipNorm: 1, Sampling: Poisson, LogicalBatch: 256, PhysicalBatch: 256, Accountant: string(accountant.RDP)}
}

// withDefaults fills the zero values.
func (c Config) withDefaults() Config {
	if c.LogicalBatch == 0 {
		c.LogicalBatch = c.Train.BatchSize
	}
	c.Train.BatchSize = c.LogicalBatch
	if c.PhysicalBatch == 0 {
		c.PhysicalBatch = 256
	}
	if c.Sampling == "" {
		c.Sampling = Poisson
	}
	if c.Accountant == "" {
		c.Accountant = string(accountant.RDP)
	}
	return c
}

// schedule is a run's resolved privacy parameters.
type schedule struct {
	n      int     // training examples N
	batch  int     // logical (expected) batch B
	q      float64 // sampling rate B/N
	steps  int     // T
	epochs int
	sigma  float64
	delta  float64
	eps    float64
}

// epochEnd is the number of steps done after epoch e (1-based):
// ⌈e·N/B⌉, so the run has ⌈epochs·N/B⌉ steps, as TensorFlow Privacy and
// the accountant's published figures count them.
func (s *schedule) epochEnd(e int) int {
	return (e*s.n + s.batch - 1) / s.batch
}

// resolve validates c for n training examples and works out σ, δ, the
// steps and ε: every error that can be known before training.
func resolve(c Config, n int) (Config, *schedule, error) {
	c = c.withDefaults()
	if err := c.Train.Validate(); err != nil {
		return c, nil, err
	}
	switch {
	case c.Train.Patience != 0:
		return c, nil, fmt.Errorf("DP-SGD has no early stopping (patience %d): the final model is the last epoch's", c.Train.Patience)
	case c.Train.Defense != nil:
		return c, nil, fmt.Errorf("DP-SGD cannot be combined with the %s training defense", c.Train.Defense.Record().Name)
	case !(c.ClipNorm > 0) || math.IsInf(c.ClipNorm, 0):
		return c, nil, fmt.Errorf("clipping norm must be positive and finite, got %g", c.ClipNorm)
	case c.PhysicalBatch < 1:
		return c, nil, fmt.Errorf("physical batch must be at least 1, got %d", c.PhysicalBatch)
	case c.Sampling != Poisson && c.Sampling != Shuffle:
		return c, nil, fmt.Errorf("unknown sampling %q (%s, %s)", c.Sampling, Poisson, Shuffle)
	case n < 2:
		return c, nil, fmt.Errorf("%d training examples: too few for DP-SGD", n)
	case c.LogicalBatch > n:
		return c, nil, fmt.Errorf("logical batch %d is larger than the %d training examples", c.LogicalBatch, n)
	case math.IsNaN(c.NoiseMultiplier) || math.IsInf(c.NoiseMultiplier, 0) || c.NoiseMultiplier < 0:
		return c, nil, fmt.Errorf("noise multiplier must be positive and finite, got %g", c.NoiseMultiplier)
	case c.NoiseMultiplier > 0 && c.TargetEpsilon > 0:
		return c, nil, fmt.Errorf("set either the noise multiplier (%g) or the target ε (%g), not both", c.NoiseMultiplier, c.TargetEpsilon)
	case c.NoiseMultiplier == 0 && !(c.TargetEpsilon > 0):
		return c, nil, fmt.Errorf("the noise multiplier must be positive, or 0 with a positive target ε to calibrate it (got σ = %g, target ε = %g)", c.NoiseMultiplier, c.TargetEpsilon)
	}
	s := &schedule{n: n, batch: c.LogicalBatch, q: float64(c.LogicalBatch) / float64(n), epochs: c.Train.Epochs, delta: c.Delta}
	if s.delta == 0 {
		s.delta = math.Pow(10, -math.Floor(math.Log10(float64(n)))-1)
	}
	if !(s.delta > 0) || s.delta >= 1/float64(n) {
		return c, nil, fmt.Errorf("δ = %g must be in (0, 1/N) = (0, %.3g) for N = %d training examples: a larger δ allows releasing an example outright", s.delta, 1/float64(n), n)
	}
	s.steps = s.epochEnd(s.epochs)
	kind := accountant.Kind(c.Accountant)
	s.sigma = c.NoiseMultiplier
	if s.sigma == 0 {
		var err error
		if s.sigma, err = accountant.CalibrateNoise(kind, s.q, s.steps, s.delta, c.TargetEpsilon); err != nil {
			return c, nil, fmt.Errorf("calibrating the noise for ε = %g: %w", c.TargetEpsilon, err)
		}
	}
	var err error
	if s.eps, err = accountant.Epsilon(kind, s.q, s.sigma, s.steps, s.delta); err != nil {
		return c, nil, fmt.Errorf("privacy accounting: %w", err)
	}
	return c, s, nil
}

// record is the metadata of the guarantee.
func (s *schedule) record(c Config) *model.Privacy {
	clipping := "flat"
	if c.PerLayer {
		clipping = "per-layer"
	}
	return &model.Privacy{
		Epsilon: s.eps, Delta: s.delta, Accountant: c.Accountant, NoiseMultiplier: s.sigma,
		ClipNorm: c.ClipNorm, Clipping: clipping, SamplingRate: s.q, Sampling: c.Sampling,
		Steps: s.steps, Examples: s.n,
	}
}

// Guarantee returns the privacy record a run of c on n training examples
// will write (σ calibrated when asked, δ defaulted), or the error the run
// would stop with before training, so a caller can show ε up front. n
// counts the examples trained on: the dataset minus the validation part.
func Guarantee(c Config, n int) (*model.Privacy, error) {
	c, s, err := resolve(c, n)
	if err != nil {
		return nil, err
	}
	return s.record(c), nil
}

// TrainingSize is the number of examples a run of c trains on when given a
// dataset of total examples: the total minus the validation part Run holds
// out (the same rounding as data.SplitFraction). Guarantee takes this n.
func TrainingSize(c Config, total int) int {
	if f := c.Train.ValFraction; f > 0 && f < 1 {
		return total - int(math.Round(f*float64(total)))
	}
	return total
}
