package engine_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/engine"
	_ "github.com/bulwark-sec/bulwark/internal/engine/blas"
	"github.com/bulwark-sec/bulwark/internal/testutil"
	"github.com/bulwark-sec/bulwark/model/safetensors"
	"github.com/bulwark-sec/bulwark/nn"
)

// golden is what testdata/reference/make_arch_reference.py writes.
type golden struct {
	InputShape []int     `json:"input_shape"`
	X          []float32 `json:"x"`
	Labels     []int     `json:"labels"`
	Logits     []float32 `json:"logits"`
	Losses     []float32 `json:"losses"`
	Grad       []float32 `json:"grad"`
}

// TestArchitecturesMatchPyTorch loads PyTorch's weights into bulwark's mlp
// and cnn and requires PyTorch's logits (max abs diff <= 1e-4) and input
// gradients (relative error <= 1e-3), on every engine.
func TestArchitecturesMatchPyTorch(t *testing.T) {
	for _, arch := range []string{"mlp", "cnn"} {
		var gd golden
		b, err := os.ReadFile("../../testdata/reference/" + arch + ".golden.json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &gd); err != nil {
			t.Fatal(err)
		}
		wf, err := safetensors.ReadFile("../../testdata/reference/" + arch + ".weights.safetensors")
		if err != nil {
			t.Fatal(err)
		}
		g, err := nn.Build(arch, []int{1, 28, 28}, 10, 1)
		if err != nil {
			t.Fatal(err)
		}
		for i := range g.Params {
			w, ok := wf.Get(g.Params[i].Name)
			if !ok {
				t.Fatalf("%s: PyTorch weights lack %q", arch, g.Params[i].Name)
			}
			if g.Params[i].Data, err = w.Float32(); err != nil {
				t.Fatal(err)
			}
		}
		for _, kind := range engine.Kinds() {
			t.Run(arch+"/"+kind, func(t *testing.T) {
				net, err := engine.New(g, kind)
				if err != nil {
					t.Fatal(err)
				}
				n := gd.InputShape[0]
				losses, grad, logits, err := net.LossGradient(gd.X, gd.Labels, n)
				if err != nil {
					t.Fatal(err)
				}
				if d := testutil.MaxAbsDiff(logits, gd.Logits); d > 1e-4 {
					t.Errorf("logits differ from PyTorch by up to %g", d)
				}
				if d := testutil.MaxAbsDiff(losses, gd.Losses); d > 1e-4 {
					t.Errorf("losses differ from PyTorch by up to %g", d)
				}
				if r := testutil.RelErr(grad, gd.Grad); r > 1e-3 {
					t.Errorf("input gradient relative error %g", r)
				}
			})
		}
	}
}

// TestGradientIndependentOfBatch: an example's input gradient must not depend
// on the batch it is computed in, on every engine (batch norm in inference
// mode, so no example sees another).
func TestGradientIndependentOfBatch(t *testing.T) {
	for _, arch := range []string{"cnn", "resnet-mini"} {
		g, err := nn.Build(arch, []int{1, 10, 10}, 4, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, kind := range engine.Kinds() {
			net, err := engine.New(g, kind)
			if err != nil {
				t.Fatal(err)
			}
			x := testutil.RandVec(rand.New(rand.NewPCG(9, 9)), 3*100, 0, 1)
			y := []int{2, 0, 3}
			_, all, _, err := net.LossGradient(x, y, 3)
			if err != nil {
				t.Fatal(err)
			}
			_, one, _, err := net.LossGradient(x[100:200], y[1:2], 1)
			if err != nil {
				t.Fatal(err)
			}
			if d := testutil.MaxAbsDiff(one, all[100:200]); d > 1e-5 {
				t.Errorf("%s/%s: example 1's gradient changes by %g with its batch", arch, kind, d)
			}
		}
	}
}

// TestInputGradientSeeds checks InputGradient on every engine: seeding with
// softmax − onehot must give LossGradient's gradient (itself checked against
// finite differences and PyTorch), and the gradient is linear in the seed:
// seeding one logit gives that logit's gradient, and seeding e_a − e_b the
// difference of the two.
func TestInputGradientSeeds(t *testing.T) {
	g, err := nn.Build("cnn", []int{1, 10, 10}, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	x := testutil.RandVec(rand.New(rand.NewPCG(4, 4)), n*100, 0, 1)
	y := []int{0, 1, 2, 3, 1}
	for _, kind := range engine.Kinds() {
		net, err := engine.New(g, kind)
		if err != nil {
			t.Fatal(err)
		}
		_, want, wantZ, err := net.LossGradient(x, y, n)
		if err != nil {
			t.Fatal(err)
		}
		got, z, err := net.InputGradient(x, n, ceSeed(y))
		if err != nil {
			t.Fatal(err)
		}
		if d := testutil.MaxAbsDiff(z, wantZ); d > 1e-5 {
			t.Errorf("%s: logits differ by %g", kind, d)
		}
		if e := testutil.RelErr(got, want); e > 1e-4 {
			t.Errorf("%s: softmax-onehot seed: relative error %g against LossGradient", kind, e)
		}
		one := func(k int) []float32 {
			gr, _, err := net.InputGradient(x, n, func(_ int, _, dz []float32) { dz[k] = 1 })
			if err != nil {
				t.Fatal(err)
			}
			return gr
		}
		g0, g2 := one(0), one(2)
		diff, _, err := net.InputGradient(x, n, func(_ int, _, dz []float32) { dz[0], dz[2] = 1, -1 })
		if err != nil {
			t.Fatal(err)
		}
		for j := range diff {
			g0[j] -= g2[j]
		}
		if e := testutil.RelErr(diff, g0); e > 1e-4 {
			t.Errorf("%s: gradient of z0-z2 is not the difference of the gradients (rel err %g)", kind, e)
		}
	}
}

// TestSeededParamGradients checks SeededParamGradients on every engine:
// seeding with softmax − onehot must give ParamGradients (itself checked
// against finite differences), and for a fixed seed w the gradient of
// Σ w·logits must match central differences along a random direction of
// every parameter.
func TestSeededParamGradients(t *testing.T) {
	g, err := nn.Build("cnn", []int{1, 10, 10}, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	const n, k = 5, 4
	rng := rand.New(rand.NewPCG(5, 5))
	x := testutil.RandVec(rng, n*100, 0, 1)
	y := []int{0, 1, 2, 3, 1}
	w := testutil.RandVec(rng, n*k, -1, 1)
	for _, kind := range engine.Kinds() {
		net, err := engine.New(g, kind)
		if err != nil {
			t.Fatal(err)
		}
		sp, ok := net.(engine.SeedParamGrader)
		if !ok {
			t.Fatalf("%s: no SeededParamGradients", kind)
		}
		want, err := net.ParamGradients(x, y, n)
		if err != nil {
			t.Fatal(err)
		}
		got, z, err := sp.SeededParamGradients(x, n, ceSeed(y))
		if err != nil {
			t.Fatal(err)
		}
		if wantZ, _ := net.Logits(x, n); testutil.MaxAbsDiff(z, wantZ) > 1e-5 {
			t.Errorf("%s: logits differ", kind)
		}
		for name, v := range want {
			if e := testutil.RelErr(got[name], v); e > 1e-4 {
				t.Errorf("%s: %s: softmax-onehot seed: relative error %g against ParamGradients", kind, name, e)
			}
		}
		gw, _, err := sp.SeededParamGradients(x, n, func(i int, _, dz []float32) { copy(dz, w[i*k:(i+1)*k]) })
		if err != nil {
			t.Fatal(err)
		}
		objective := func(g2 *nn.Graph) float64 {
			m, err := engine.New(g2, kind)
			if err != nil {
				t.Fatal(err)
			}
			z, err := m.Logits(x, n)
			if err != nil {
				t.Fatal(err)
			}
			var s float64
			for j, v := range z {
				s += float64(w[j]) * float64(v)
			}
			return s
		}
		for _, i := range g.Trainable() {
			p := g.Params[i]
			dir := testutil.UnitVec(rng, p.Size())
			const h = 1e-3
			at := func(sign float64) float64 {
				g2 := g.Clone()
				for j := range g2.Params[i].Data {
					g2.Params[i].Data[j] += float32(sign * h * float64(dir[j]))
				}
				return objective(g2)
			}
			fd := (at(1) - at(-1)) / (2 * h)
			an := testutil.Dot(gw[p.Name], dir)
			if math.Abs(fd-an) > 3e-3*max(1, math.Abs(fd)) {
				t.Errorf("%s: %s: directional derivative %g, finite differences %g", kind, p.Name, an, fd)
			}
		}
	}
}

// ceSeed seeds a logit-weighted gradient with softmax − onehot(y_i): the
// gradient of the summed cross-entropy.
func ceSeed(y []int) func(i int, logits, dz []float32) {
	return func(i int, logits, dz []float32) {
		mx := logits[0]
		for _, v := range logits {
			mx = max(mx, v)
		}
		var s float64
		for _, v := range logits {
			s += math.Exp(float64(v - mx))
		}
		for c, v := range logits {
			dz[c] = float32(math.Exp(float64(v-mx)) / s)
		}
		dz[y[i]]--
	}
}
