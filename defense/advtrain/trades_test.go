package advtrain_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/attack"
	"github.com/bulwark-sec/bulwark/attack/attacktest"
	"github.com/bulwark-sec/bulwark/defense/advtrain"
	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/internal/testutil"
	"github.com/bulwark-sec/bulwark/nn"
	"github.com/bulwark-sec/bulwark/train"
)

// capture is a Trainer that keeps the gradients Apply is given.
type capture struct {
	engine.Trainer
	grads map[string][]float32
	lr    float32
}

func (c *capture) Apply(g map[string][]float32, lr float32) error {
	c.grads, c.lr = g, lr
	return nil
}

// tradesLoss is the TRADES objective computed from scratch: mean clean
// cross-entropy plus β times the mean KL(p(x) ‖ p(adv)).
func tradesLoss(t *testing.T, net engine.Net, x, adv []float32, y []int, beta float64) float64 {
	t.Helper()
	n := len(y)
	z, err := net.Logits(x, n)
	if err != nil {
		t.Fatal(err)
	}
	za, err := net.Logits(adv, n)
	if err != nil {
		t.Fatal(err)
	}
	k := net.NumClasses()
	logsm := func(row []float32) []float64 {
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v))
		}
		out := make([]float64, len(row))
		for c, v := range row {
			out[c] = float64(v) - math.Log(s)
		}
		return out
	}
	var l float64
	for i := range n {
		lp, lq := logsm(z[i*k:(i+1)*k]), logsm(za[i*k:(i+1)*k])
		l -= lp[y[i]]
		for c := range k {
			l += beta * math.Exp(lp[c]) * (lp[c] - lq[c])
		}
	}
	return l / float64(n)
}

// The gradient a TRADES step hands to the optimiser is the gradient of the
// TRADES objective (through both the clean and the adversarial
// predictions, the adversarial examples held fixed): checked against
// central differences along a random unit direction of every parameter, on
// both engines. A step that dropped either KL path, or the 1/n, fails.
func TestTRADESGradient(t *testing.T) {
	const n, beta = 6, 6.0
	g, err := nn.Build("cnn", []int{1, 10, 10}, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	x := testutil.RandVec(rng, n*100, 0, 1)
	y := []int{0, 1, 2, 3, 0, 1}
	d := mustNew(t, "trades", advtrain.Params{Eps: 0.1, Beta: beta, Steps: 3, Seed: 1})
	sd, ok := d.(train.StepDefense)
	if !ok {
		t.Fatal("trades is not a train.StepDefense")
	}
	for _, kind := range engine.Kinds() {
		net, err := engine.New(g, kind)
		if err != nil {
			t.Fatal(err)
		}
		if err := sd.Check(net); err != nil {
			t.Fatal(err)
		}
		const progress = 0.3
		adv, err := d.Transform(context.Background(), net, slices.Clone(x), y, n, progress)
		if err != nil {
			t.Fatal(err)
		}
		tr := &capture{}
		r, err := sd.Step(context.Background(), net, tr, slices.Clone(x), y, n, 0.01, progress)
		if err != nil {
			t.Fatal(err)
		}
		if want := tradesLoss(t, net, x, adv, y, beta); math.Abs(float64(r.Loss)-want) > 1e-4*max(1, want) {
			t.Errorf("%s: step loss %v, the objective is %v", kind, r.Loss, want)
		}
		if tr.lr != 0.01 || len(tr.grads) != len(g.Trainable()) {
			t.Fatalf("%s: Apply got %d gradients at lr %v", kind, len(tr.grads), tr.lr)
		}
		for _, i := range g.Trainable() {
			p := g.Params[i]
			dir := testutil.UnitVec(rng, p.Size())
			const h = 3e-4
			at := func(sign float64) float64 {
				g2 := g.Clone()
				for j := range g2.Params[i].Data {
					g2.Params[i].Data[j] += float32(sign * h * float64(dir[j]))
				}
				m, err := engine.New(g2, kind)
				if err != nil {
					t.Fatal(err)
				}
				return tradesLoss(t, m, x, adv, y, beta)
			}
			fd := (at(1) - at(-1)) / (2 * h)
			an := testutil.Dot(tr.grads[p.Name], dir)
			if math.Abs(fd-an) > 3e-3*max(1, math.Abs(fd)) {
				t.Errorf("%s: %s: directional derivative %g, finite differences %g", kind, p.Name, an, fd)
			}
		}
	}
}

// The inner maximisation stays in the ball and in [0, 1], reaches the
// radius, and raises the KL divergence from the clean prediction well
// above what a random point of the ball gives.
func TestTRADESInnerMaximisesKL(t *testing.T) {
	net, ds := attacktest.Fashion(t, "mlp", 5000, 2, 256)
	size := len(ds.X) / ds.Len()
	const eps = 0.1
	d := mustNew(t, "trades", advtrain.Params{Eps: eps, Seed: 1})
	adv, err := d.Transform(context.Background(), net, slices.Clone(ds.X), ds.Y, ds.Len(), 0.5)
	if err != nil {
		t.Fatal(err)
	}
	rnd := slices.Clone(ds.X)
	rng := rand.New(rand.NewPCG(3, 3))
	for j := range rnd {
		rnd[j] = min(max(rnd[j]+float32(eps*(2*rng.Float64()-1)), 0), 1)
	}
	dist := 0.0
	for i := range ds.Len() {
		dist = max(dist, attack.Linf.Distance(adv[i*size:(i+1)*size], ds.X[i*size:(i+1)*size]))
	}
	for _, v := range adv {
		if !(v >= 0 && v <= 1) {
			t.Fatalf("value %v outside [0, 1]", v)
		}
	}
	// β = 1 and the clean term cancel out of the difference.
	klAdv := tradesLoss(t, net, ds.X, adv, ds.Y, 1) - tradesLoss(t, net, ds.X, ds.X, ds.Y, 1)
	klRnd := tradesLoss(t, net, ds.X, rnd, ds.Y, 1) - tradesLoss(t, net, ds.X, ds.X, ds.Y, 1)
	t.Logf("L∞ %.4f; mean KL %.3f after the inner maximisation, %.3f at a random point", dist, klAdv, klRnd)
	if dist > eps+1e-6 || dist < 0.99*eps {
		t.Errorf("largest perturbation %v, want eps %v", dist, eps)
	}
	if klAdv < 10*klRnd || klAdv < 0.5 {
		t.Errorf("mean KL %.3f after the inner maximisation, %.3f at a random point", klAdv, klRnd)
	}
}

// Batch norm is refused before training starts.
func TestTRADESRefusesBatchNorm(t *testing.T) {
	g, err := nn.Build("resnet-mini", []int{1, 10, 10}, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	net, err := engine.New(g, "")
	if err != nil {
		t.Fatal(err)
	}
	err = mustNew(t, "trades", advtrain.Params{Eps: 0.1}).(train.StepDefense).Check(net)
	if err == nil || !strings.Contains(err.Error(), "batch norm") {
		t.Errorf("resnet-mini: %v, want a batch-norm refusal", err)
	}
}
