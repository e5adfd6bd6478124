package engine_test

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/engine"
	_ "github.com/bulwark-sec/bulwark/internal/engine/blas"
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
				if d := maxAbsDiff(logits, gd.Logits); d > 1e-4 {
					t.Errorf("logits differ from PyTorch by up to %g", d)
				}
				if d := maxAbsDiff(losses, gd.Losses); d > 1e-4 {
					t.Errorf("losses differ from PyTorch by up to %g", d)
				}
				if r := relErr(grad, gd.Grad); r > 1e-3 {
					t.Errorf("input gradient relative error %g", r)
				}
			})
		}
	}
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// relErr is ‖a−b‖ / ‖b‖.
func relErr(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range a {
		d := float64(a[i] - b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / den)
}
