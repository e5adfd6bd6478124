package dpsgd

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/data"
	"github.com/bulwark-sec/bulwark/evaluate"
	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/model"
	"github.com/bulwark-sec/bulwark/nn"
	"github.com/bulwark-sec/bulwark/train"
)

// synthetic is n 8x8 images of 3 classes, each class a brighter band.
func synthetic(n int) *data.Dataset {
	rng := rand.New(rand.NewPCG(1, 2))
	d := &data.Dataset{Name: "synthetic", Shape: []int{1, 8, 8}, Classes: []string{"a", "b", "c"},
		Fingerprint: "sha256:synthetic", Preprocess: data.Preprocess{Scale: 1, Layout: data.LayoutNCHW}}
	for i := range n {
		y := i % 3
		for p := range 64 {
			v := 0.3 * rng.Float32()
			if p/8 >= y*3 && p/8 < y*3+2 {
				v += 0.6
			}
			d.X = append(d.X, v)
		}
		d.Y = append(d.Y, y)
	}
	return d
}

func small(arch string) Config {
	c := Defaults(arch)
	c.Train.Epochs = 2
	c.Train.ValFraction = 0
	c.LogicalBatch = 32
	c.Delta = 1e-4
	return c
}

func TestRefusals(t *testing.T) {
	d := synthetic(300)
	cases := []struct {
		name, want string
		edit       func(c *Config)
	}{
		{"delta", "δ", func(c *Config) { c.Delta = 1.0 / 300 }},
		{"clip", "clipping norm", func(c *Config) { c.ClipNorm = 0 }},
		{"sigma", "noise multiplier", func(c *Config) { c.NoiseMultiplier = 0 }},
		{"negative sigma", "noise multiplier", func(c *Config) { c.NoiseMultiplier = -1 }},
		{"both", "either", func(c *Config) { c.TargetEpsilon = 1 }},
		{"unreachable", "unreachable", func(c *Config) { c.NoiseMultiplier, c.TargetEpsilon = 0, 1e-5 }},
		{"batch norm", "batch norm", func(c *Config) { c.Train.Arch = "resnet-mini" }},
		{"batch", "larger than", func(c *Config) { c.LogicalBatch = 301 }},
		{"sampling", "sampling", func(c *Config) { c.Sampling = "random" }},
		{"patience", "early stopping", func(c *Config) { c.Train.Patience = 2 }},
		{"accountant", "accountant", func(c *Config) { c.Accountant = "moments" }},
	}
	for _, tc := range cases {
		c := small("mlp")
		tc.edit(&c)
		out := filepath.Join(t.TempDir(), "m.safetensors")
		steps := 0
		_, err := Run(context.Background(), c, d, out, train.Progress{Step: func(int, int, int, float32) { steps++ }})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
		if steps > 0 {
			t.Errorf("%s: %d steps ran before the error", tc.name, steps)
		}
		if _, err := os.Stat(train.CheckpointPath(out)); err == nil {
			t.Errorf("%s: a checkpoint was written", tc.name)
		}
	}
}

// TestNoiseStatistics: the noise added to a zero sum has mean 0 and
// standard deviation σC/B per coordinate, the same for the same seed and
// step, and differs between secure draws.
func TestNoiseStatistics(t *testing.T) {
	const sigmaC, batch = 1.3, 64
	draw := func(r randomness, step int) []float32 {
		v := [][]float32{make([]float32, 150000), make([]float32, 70000)}
		r.noisyMean(v, sigmaC, batch, step)
		return append(v[0], v[1]...)
	}
	check := func(what string, v []float32) {
		var s, s2 float64
		for _, x := range v {
			s += float64(x)
			s2 += float64(x) * float64(x)
		}
		n := float64(len(v))
		mean, std := s/n, math.Sqrt(s2/n-(s/n)*(s/n))
		want := sigmaC / batch
		if math.Abs(std/want-1) > 0.02 || math.Abs(mean) > 5*want/math.Sqrt(n) {
			t.Errorf("%s: mean %.3g std %.5g, want 0 and %.5g", what, mean, std, want)
		}
	}
	r := randomness{seed: 7}
	a, b, c := draw(r, 3), draw(r, 3), draw(r, 4)
	check("seeded", a)
	if testEqual(a, b) != len(a) {
		t.Error("the same seed and step gave different noise")
	}
	if testEqual(a, c) > 10 {
		t.Error("different steps gave the same noise")
	}
	sec := randomness{seed: 7, secure: true}
	s1, s2 := draw(sec, 3), draw(sec, 3)
	check("secure", s1)
	if testEqual(s1, s2) > 10 || testEqual(s1, a) > 10 {
		t.Error("secure noise repeated")
	}
}

func testEqual(a, b []float32) int {
	k := 0
	for i := range a {
		if a[i] == b[i] {
			k++
		}
	}
	return k
}

// TestPoissonSampling: batch sizes have mean qN and variance qN(1-q), and
// every example is included at rate q.
func TestPoissonSampling(t *testing.T) {
	const n, q, steps = 1000, 0.05, 4000
	r := randomness{seed: 3}
	count := make([]int, n)
	var s, s2 float64
	var idx []int
	for step := range steps {
		idx = r.poisson(n, q, step, idx)
		for j, i := range idx {
			if j > 0 && i <= idx[j-1] {
				t.Fatal("indices not increasing")
			}
			count[i]++
		}
		s += float64(len(idx))
		s2 += float64(len(idx)) * float64(len(idx))
	}
	mean := s / steps
	variance := s2/steps - mean*mean
	if math.Abs(mean-q*n) > 4*math.Sqrt(q*n*(1-q)/steps) {
		t.Errorf("mean batch %.2f, want %.2f", mean, q*n)
	}
	if math.Abs(variance/(q*n*(1-q))-1) > 0.1 {
		t.Errorf("batch variance %.2f, want %.2f", variance, q*n*(1-q))
	}
	// Inclusion rate of the first, middle and last tenth of the examples.
	for _, part := range [][2]int{{0, 100}, {450, 550}, {900, 1000}} {
		c := 0
		for _, v := range count[part[0]:part[1]] {
			c += v
		}
		rate := float64(c) / (100 * steps)
		if math.Abs(rate-q) > 4*math.Sqrt(q*(1-q)/(100*steps)) {
			t.Errorf("examples %v included at rate %.4f, want %.4f", part, rate, q)
		}
	}
	if got := r.poisson(10, 1, 0, nil); len(got) != 10 {
		t.Errorf("q = 1 sampled %d of 10", len(got))
	}
}

// TestResumeIsExact: a run stopped after its first epoch and resumed ends
// with the same parameters, bit for bit, as one that was not stopped.
func TestResumeIsExact(t *testing.T) {
	d := synthetic(400)
	cnn := small("cnn")
	cnn.PerLayer = true
	cnn.Train.Optimizer = nn.Optimizer{Name: "sgd", Momentum: 0.9}
	cnn.Train.LearningRate = 0.05
	for _, c := range []Config{small("mlp"), cnn} {
		c.Train.Epochs = 3
		dir := t.TempDir()
		want, err := Run(context.Background(), c, d, filepath.Join(dir, "a"), train.Progress{})
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "b")
		ctx, cancel := context.WithCancel(context.Background())
		_, err = Run(ctx, c, d, out, train.Progress{Epoch: func(e train.EpochResult) {
			if e.Epoch == 1 {
				cancel()
			}
		}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("stopped run: %v", err)
		}
		c.Resume = true
		got, err := Run(context.Background(), c, d, out, train.Progress{})
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range want.Model.Params {
			if testEqual(got.Model.Params[i].Data, p.Data) != len(p.Data) {
				t.Errorf("%s: %s differs after resuming", c.Train.Arch, p.Name)
			}
		}
		if len(got.Epochs) != 3 {
			t.Errorf("%d epochs in the history", len(got.Epochs))
		}
		if _, err := os.Stat(train.CheckpointPath(out)); err == nil {
			t.Error("checkpoint left behind")
		}
		// A resume with other settings is refused.
		c.Resume = false
		ctx2, cancel2 := context.WithCancel(context.Background())
		if _, err := Run(ctx2, c, d, out, train.Progress{Epoch: func(train.EpochResult) { cancel2() }}); err == nil {
			t.Fatal("cancelled run finished")
		}
		c.Resume, c.ClipNorm = true, 2
		if _, err := Run(context.Background(), c, d, out, train.Progress{}); err == nil || !strings.Contains(err.Error(), "different settings") {
			t.Errorf("resume with another clipping norm: %v", err)
		}
	}
}

// TestSecureRunsDiffer: with SecureNoise two runs with the same seed do
// not produce the same model.
func TestSecureRunsDiffer(t *testing.T) {
	d := synthetic(200)
	c := small("logreg")
	c.Train.Epochs = 1
	c.SecureNoise = true
	dir := t.TempDir()
	a, err := Run(context.Background(), c, d, filepath.Join(dir, "a"), train.Progress{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(context.Background(), c, d, filepath.Join(dir, "b"), train.Progress{})
	if err != nil {
		t.Fatal(err)
	}
	w := a.Model.Params[0].Data
	if testEqual(w, b.Model.Params[0].Data) > len(w)/10 {
		t.Error("secure runs gave the same weights")
	}
}

// TestFashionLearns trains an MLP with DP-SGD on 2000 Fashion-MNIST images
// and checks that it learns, and the privacy record of the saved model.
func TestFashionLearns(t *testing.T) {
	tr, err := data.Load("fashion-mnist", "train")
	if err != nil {
		t.Skipf("Fashion-MNIST: %v", err)
	}
	te, err := data.Load("fashion-mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	tr, te = tr.Head(2000), te.Head(1000)
	c := Defaults("mlp")
	c.Train.Epochs = 8
	c.Train.ValFraction = 0.1
	c.LogicalBatch = 64
	c.ClipNorm = 1
	c.NoiseMultiplier = 1
	c.Train.LearningRate = 3e-3
	out := filepath.Join(t.TempDir(), "dp.safetensors")
	res, err := Run(context.Background(), c, tr, out, train.Progress{})
	if err != nil {
		t.Fatal(err)
	}
	g, meta, ck, err := model.LoadNative(out)
	if err != nil {
		t.Fatal(err)
	}
	if ck != nil {
		t.Error("the final model holds a checkpoint")
	}
	p := meta.Provenance.Privacy
	if p == nil {
		t.Fatal("no privacy record")
	}
	n := 1800 // 10% held out
	steps := (8*n + 63) / 64
	if p.Examples != n || p.Steps != steps || p.SamplingRate != 64.0/1800 || p.NoiseMultiplier != 1 || p.ClipNorm != 1 ||
		p.Clipping != "flat" || p.Sampling != "poisson" || p.Accountant != "rdp" || p.Delta != 1e-4 {
		t.Errorf("privacy record %+v", *p)
	}
	if !(p.Epsilon > 0 && p.Epsilon < 100) || p.Epsilon != res.Meta.Provenance.Privacy.Epsilon {
		t.Errorf("ε = %g", p.Epsilon)
	}
	// What the CLI prints before training must be what the run records.
	if pre, err := Guarantee(c, TrainingSize(c, tr.Len())); err != nil || *pre != *p {
		t.Errorf("Guarantee before the run: %+v, %v; the run recorded %+v", pre, err, *p)
	}
	net, err := engine.New(g, "")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := evaluate.Run(context.Background(), net, te, te.Classes, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ε = %.3g (δ = %g, σ = %g, %d steps): test accuracy %.3f, last epoch %+v", p.Epsilon, p.Delta, p.NoiseMultiplier, p.Steps, ev.Accuracy, res.Epochs[len(res.Epochs)-1])
	if ev.Accuracy < 0.5 {
		t.Errorf("test accuracy %.3f: DP-SGD did not learn (chance is 0.1)", ev.Accuracy)
	}
}
