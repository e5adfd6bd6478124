package blas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/internal/testutil"
	"github.com/bulwark-sec/bulwark/nn"
)

// naiveClipped is DP-SGD's clipped sum by definition: every example's
// gradient from ParamGradients of that example alone, its norm (whole, or
// per layer as engine.ClipLayers groups them), scaled and summed.
func naiveClipped(t *testing.T, net engine.Net, x []float32, y []int, clip float64, perLayer bool) (map[string][]float32, []float64) {
	t.Helper()
	g := net.Graph()
	layers, err := engine.ClipLayers(g)
	if err != nil {
		t.Fatal(err)
	}
	size := net.InputSize()
	sum := map[string][]float32{}
	var norms []float64
	for i := range y {
		gi, err := net.ParamGradients(x[i*size:(i+1)*size], y[i:i+1], 1)
		if err != nil {
			t.Fatal(err)
		}
		sq := make([]float64, len(layers))
		total := 0.0
		for l, ly := range layers {
			for _, pi := range ly.Params {
				for _, v := range gi[g.Params[pi].Name] {
					sq[l] += float64(v) * float64(v)
				}
			}
			total += sq[l]
		}
		norms = append(norms, math.Sqrt(total))
		for l, ly := range layers {
			c := math.Min(1, clip/(math.Sqrt(total)+1e-6))
			if perLayer {
				c = math.Min(1, clip/math.Sqrt(float64(len(layers)))/(math.Sqrt(sq[l])+1e-6))
			}
			for _, pi := range ly.Params {
				name := g.Params[pi].Name
				if sum[name] == nil {
					sum[name] = make([]float32, len(gi[name]))
				}
				for j, v := range gi[name] {
					sum[name][j] += float32(c * float64(v))
				}
			}
		}
	}
	return sum, norms
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestClippedGradientSumMatchesNaive checks the norms and the clipped sums
// of both engines against the per-example loop, for batches that need
// padding (37) and splitting (MaxBatch+5), flat and per-layer clipping,
// with the clipping norm at the median so that half the examples clip.
func TestClippedGradientSumMatchesNaive(t *testing.T) {
	for _, arch := range []string{"mlp", "cnn", "lenet", "logreg"} {
		for _, n := range []int{37, MaxBatch + 5} {
			if n > MaxBatch && arch != "mlp" && arch != "cnn" {
				continue
			}
			g, err := nn.Build(arch, []int{1, 12, 12}, 5, 3)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(8, uint64(n)))
			randomizeStats(g, rng)
			m, err := Compile(g)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := engine.Compile(g)
			if err != nil {
				t.Fatal(err)
			}
			x := testutil.RandVec(rng, n*144, 0, 1)
			y := make([]int, n)
			for i := range y {
				y[i] = rng.IntN(5)
			}
			_, norms := naiveClipped(t, m, x, y, 1, false)
			clip := median(norms)
			for _, perLayer := range []bool{false, true} {
				name := fmt.Sprintf("%s/n=%d/perLayer=%v", arch, n, perLayer)
				want, wantNorms := naiveClipped(t, m, x, y, clip, perLayer)
				engines := []engine.Net{m}
				if n < MaxBatch {
					engines = append(engines, ref) // GoMLX: slow path, once
				}
				for _, net := range engines {
					got, err := engine.ClippedGradientSum(net, x, y, n, clip, perLayer)
					if err != nil {
						t.Fatalf("%s %s: %v", name, engine.Name(net), err)
					}
					what := name + " " + engine.Name(net)
					for i := range n {
						if d := math.Abs(got.Norms[i] - wantNorms[i]); d > 1e-4*wantNorms[i] {
							t.Errorf("%s: norm %d = %g, want %g", what, i, got.Norms[i], wantNorms[i])
						}
					}
					for pname, w := range want {
						if rel := testutil.RelErr(got.Sum[pname], w); rel > 1e-4 {
							t.Errorf("%s: %s relative error %.3g", what, pname, rel)
						}
					}
					losses, _, logits, err := m.LossGradient(x, y, n)
					if err != nil {
						t.Fatal(err)
					}
					compare(t, what+" losses", got.Losses, losses)
					if c := countCorrect(logits, y); got.Correct != c {
						t.Errorf("%s: %d correct, want %d", what, got.Correct, c)
					}
				}
			}
		}
	}
}

// TestPerExampleGradientsMatchAlone checks the materialised per-example
// gradients of the blas engine against single-example gradients.
func TestPerExampleGradientsMatchAlone(t *testing.T) {
	for _, arch := range []string{"mlp", "cnn", "lenet"} {
		g, err := nn.Build(arch, []int{1, 12, 12}, 4, 3)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(4, 4))
		randomizeStats(g, rng)
		m, err := Compile(g)
		if err != nil {
			t.Fatal(err)
		}
		const n = 5
		x := testutil.RandVec(rng, n*144, 0, 1)
		y := []int{1, 3, 0, 2, 2}
		per, err := engine.PerExampleGradients(m, x, y, n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			one, err := m.ParamGradients(x[i*144:(i+1)*144], y[i:i+1], 1)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range one {
				compare(t, fmt.Sprintf("%s example %d %s", arch, i, name), per[name][i*len(want):(i+1)*len(want)], want)
			}
		}
	}
}

// TestPerExampleRefusesBatchNorm: batch norm mixes examples.
func TestPerExampleRefusesBatchNorm(t *testing.T) {
	g, err := nn.Build("resnet-mini", []int{1, 8, 8}, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := engine.Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	for _, net := range []engine.Net{m, ref} {
		_, err := engine.ClippedGradientSum(net, make([]float32, 64), []int{0}, 1, 1, false)
		if err == nil || !strings.Contains(err.Error(), "batch norm") {
			t.Errorf("%s: batch norm model: %v", engine.Name(net), err)
		}
	}
	if _, err := m.PerExampleGradients(make([]float32, 64), []int{0}, 1); err == nil || !strings.Contains(err.Error(), "batch norm") {
		t.Errorf("PerExampleGradients: %v", err)
	}
	if _, err := engine.ClippedGradientSum(m, make([]float32, 64), []int{0}, 1, 0, false); err == nil {
		t.Error("clip 0 accepted")
	}
}

// TestApplyMatchesStep: Apply with the batch's mean gradient is the step
// Step takes, on both engines (their update rules agree, and a model
// without batch norm has the same gradients in both modes).
func TestApplyMatchesStep(t *testing.T) {
	for _, opt := range []nn.Optimizer{{Name: "adam", WeightDecay: 0.01}, {Name: "sgd", Momentum: 0.9}} {
		g, err := nn.Build("cnn", []int{1, 12, 12}, 5, 3)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(2, 9))
		randomizeStats(g, rng)
		stepNet, _ := Compile(g)
		applyNet, _ := Compile(g)
		refNet, err := engine.Compile(g)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := NewTrainer(stepNet, opt)
		at, _ := NewTrainer(applyNet, opt)
		rt, err := engine.NewTrainer(refNet, opt)
		if err != nil {
			t.Fatal(err)
		}
		const n = 8
		for step := range 3 {
			x := testutil.RandVec(rng, n*144, 0, 1)
			y := make([]int, n)
			for i := range y {
				y[i] = rng.IntN(5)
			}
			grads, err := applyNet.ParamGradients(x, y, n)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range grads {
				for j := range v {
					v[j] /= n
				}
			}
			if _, err := st.Step(x, y, n, 1e-2); err != nil {
				t.Fatal(err)
			}
			if err := at.Apply(grads, 1e-2); err != nil {
				t.Fatal(err)
			}
			if err := rt.Apply(grads, 1e-2); err != nil {
				t.Fatal(err)
			}
			want, _ := stepNet.Params()
			got, _ := applyNet.Params()
			ref, _ := refNet.Params()
			for i := range want.Params {
				what := fmt.Sprintf("%s step %d %s", opt.Name, step, want.Params[i].Name)
				compare(t, what, got.Params[i].Data, want.Params[i].Data)
				compare(t, what+" (gomlx)", ref.Params[i].Data, want.Params[i].Data)
			}
		}
		if at.Steps() != 3 || rt.Steps() != 3 {
			t.Errorf("steps %d, %d", at.Steps(), rt.Steps())
		}
		if err := at.Apply(map[string][]float32{"x": nil}, 1); err == nil {
			t.Error("Apply with wrong gradients accepted")
		}
	}
}
