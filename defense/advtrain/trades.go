package advtrain

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/model"
	"github.com/bulwark-sec/bulwark/nn"
)

// TRADES (Zhang et al., "Theoretically Principled Trade-off between
// Robustness and Accuracy", ICML 2019) minimises, per batch of n examples,
//
//	L(θ) = (1/n) Σ_i [ CE(f(x_i), y_i) + β·KL(p(x_i) ‖ p(x'_i)) ]
//
// where p = softmax(f) and x'_i maximises the KL term within the ball
// around x_i (eq. 5 of the paper). The inner maximisation starts at
// x + 0.001·N(0, 1), as the authors' code does, and takes signed-gradient
// steps on the KL term, projecting onto the L∞ ball and [0, 1].
//
// The parameter gradient flows through both predictions. With z the clean
// logits and z' the adversarial ones, the logit gradients are
//
//	∂L/∂z_i  = (p_i − e_{y_i})/n + (β/n)·p_i ⊙ ((log p_i − log p'_i) − KL_i)
//	∂L/∂z'_i = (β/n)·(p'_i − p_i)
//
// so one seeded backward pass on the clean batch and one on the adversarial
// batch (engine.SeedParamGrader) give ∇θL, which goes to Trainer.Apply.

// trades is the TRADES defense: a train.StepDefense.
type trades struct {
	*defense
	beta float64
}

// Check refuses what the step cannot do correctly: an engine without
// seeded parameter gradients, and batch norm. The seeded passes run the
// inference graph, so a batch-norm layer would train on its running
// statistics, which nothing would update.
func (d *trades) Check(net engine.Net) error {
	if _, ok := net.(engine.SeedParamGrader); !ok {
		return fmt.Errorf("the %s engine has no seeded parameter gradients", engine.Name(net))
	}
	for _, nd := range net.Graph().Nodes {
		if nd.Op == nn.OpBatchNorm {
			return errors.New("the model has batch norm, which the TRADES step (inference-mode passes) would not train; use an architecture without it (mlp, cnn) or pgd-at")
		}
	}
	return nil
}

// Transform returns the examples TRADES trains its KL term on (the inner
// maximisation); train.Run calls Step instead.
func (d *trades) Transform(ctx context.Context, net engine.Net, x []float32, y []int, n int, progress float64) ([]float32, error) {
	if err := d.checkBatch(net, x, y, n); err != nil {
		return nil, err
	}
	logits, err := net.Logits(x, n)
	if err != nil {
		return nil, err
	}
	return d.inner(ctx, net, x, softmaxRows(logits, n), n, progress)
}

func (d *trades) checkBatch(net engine.Net, x []float32, y []int, n int) error {
	size := net.InputSize()
	if len(x) != n*size || len(y) < n {
		return fmt.Errorf("%d values and %d labels for %d examples of size %d", len(x), len(y), n, size)
	}
	for i, v := range x {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("example %d has value %v: adversarial training needs inputs in [0, 1] (images), not raw features", i/size, v)
		}
	}
	return nil
}

// inner maximises Σ_i KL(p_i ‖ p(x'_i)) over the L∞ ball of radius
// epsAt(progress) around x; p holds the clean probabilities.
func (d *trades) inner(ctx context.Context, net engine.Net, x []float32, p []float64, n int, progress float64) ([]float32, error) {
	eps := d.epsAt(progress)
	adv := make([]float32, len(x))
	copy(adv, x)
	if eps == 0 || n == 0 {
		return adv, nil
	}
	step := float32(d.p.StepSize * eps / d.p.Eps)
	key := mix(d.p.Seed ^ mix(math.Float64bits(progress)))
	rng := rand.New(rand.NewPCG(key, 0x747261646573)) // "trades"
	for i := range adv {
		adv[i] = clamp01(adv[i] + float32(0.001*rng.NormFloat64()))
	}
	k := net.NumClasses()
	e := float32(eps)
	for range d.p.Steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// ∂KL(p ‖ p')/∂z' = p' − p.
		grad, _, err := net.InputGradient(adv, n, func(i int, logits, dz []float32) {
			q := softmax64(logits)
			for c := range k {
				dz[c] = float32(q[c] - p[i*k+c])
			}
		})
		if err != nil {
			return nil, err
		}
		for j, g := range grad {
			v := adv[j]
			switch {
			case g > 0:
				v += step
			case g < 0:
				v -= step
			}
			adv[j] = clamp01(min(max(v, x[j]-e), x[j]+e))
		}
	}
	return adv, nil
}

// Step takes one TRADES step on the batch: the inner maximisation, then
// the gradient of the TRADES loss from two seeded passes, then the
// optimiser. The result's Loss is the TRADES loss and Correct counts the
// clean examples classified right, both before the update.
func (d *trades) Step(ctx context.Context, net engine.Net, tr engine.Trainer, x []float32, y []int, n int, lr float32, progress float64) (nn.StepResult, error) {
	if err := d.checkBatch(net, x, y, n); err != nil {
		return nn.StepResult{}, err
	}
	sp, ok := net.(engine.SeedParamGrader)
	if !ok {
		return nn.StepResult{}, d.Check(net)
	}
	k := net.NumClasses()
	logits, err := net.Logits(x, n)
	if err != nil {
		return nn.StepResult{}, err
	}
	p := softmaxRows(logits, n)
	adv, err := d.inner(ctx, net, x, p, n, progress)
	if err != nil {
		return nn.StepResult{}, err
	}
	advLogits, err := net.Logits(adv, n)
	if err != nil {
		return nn.StepResult{}, err
	}
	// Log-probabilities straight from the logits, so that a probability
	// that underflows cannot make the KL term infinite.
	logQ := make([]float64, 0, len(advLogits))
	for i := range n {
		logQ = append(logQ, logSoftmax64(advLogits[i*k:(i+1)*k])...)
	}
	scale, beta := 1/float64(n), d.beta/float64(n)
	var loss float64
	correct := 0
	clean, _, err := sp.SeededParamGradients(x, n, func(i int, z, dz []float32) {
		logP, lq := logSoftmax64(z), logQ[i*k:(i+1)*k]
		var kl float64
		for c := range k {
			kl += math.Exp(logP[c]) * (logP[c] - lq[c])
		}
		for c := range k {
			pc := math.Exp(logP[c])
			dz[c] = float32(scale*pc + beta*pc*((logP[c]-lq[c])-kl))
		}
		dz[y[i]] -= float32(scale)
		loss += -logP[y[i]] + d.beta*kl
		if argmax(z) == y[i] {
			correct++
		}
	})
	if err != nil {
		return nn.StepResult{}, err
	}
	robust, _, err := sp.SeededParamGradients(adv, n, func(i int, z, dz []float32) {
		qi, pi := softmax64(z), p[i*k:(i+1)*k]
		for c := range k {
			dz[c] = float32(beta * (qi[c] - pi[c]))
		}
	})
	if err != nil {
		return nn.StepResult{}, err
	}
	for name, g := range robust {
		addTo(clean[name], g)
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return nn.StepResult{Loss: float32(loss / float64(n))}, nil // train.Run reports the divergence
	}
	if err := tr.Apply(clean, lr); err != nil {
		return nn.StepResult{}, err
	}
	return nn.StepResult{Loss: float32(loss / float64(n)), Correct: correct}, nil
}

// Record describes the defense for the model's metadata.
func (d *trades) Record() model.Defense {
	r := d.defense.Record()
	r.Params["beta"] = d.beta
	r.Params["attack"] = "trades-kl-pgd" // the inner maximisation is the KL loop above, not the registry's pgd
	r.Params["attack_version"] = version
	r.Params["random_start"] = "gaussian 0.001"
	delete(r.Params, "clean_fraction")
	return r
}

// logSoftmax64 is a numerically stable log-softmax in float64.
func logSoftmax64(z []float32) []float64 {
	mx := float64(z[0])
	for _, v := range z {
		mx = max(mx, float64(v))
	}
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v) - mx)
	}
	lse := mx + math.Log(s)
	out := make([]float64, len(z))
	for c, v := range z {
		out[c] = float64(v) - lse
	}
	return out
}

// softmax64 is softmax in float64.
func softmax64(z []float32) []float64 {
	out := logSoftmax64(z)
	for c, v := range out {
		out[c] = math.Exp(v)
	}
	return out
}

// softmaxRows applies softmax64 to each of the n rows of logits.
func softmaxRows(logits []float32, n int) []float64 {
	k := len(logits) / max(n, 1)
	out := make([]float64, 0, len(logits))
	for i := range n {
		out = append(out, softmax64(logits[i*k:(i+1)*k])...)
	}
	return out
}

func argmax(z []float32) int {
	best := 0
	for c, v := range z {
		if v > z[best] {
			best = c
		}
	}
	return best
}

func clamp01(v float32) float32 { return min(max(v, 0), 1) }

func addTo(dst, src []float32) {
	for i, v := range src {
		dst[i] += v
	}
}
