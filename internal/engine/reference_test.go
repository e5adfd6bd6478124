package engine_test

import (
	"encoding/json"
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
