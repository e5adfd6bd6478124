package model

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/internal/testutil"
)

// TestONNXMatchesPyTorch loads each ONNX fixture exported from PyTorch
// (testdata/onnx/make_fixtures.py) and requires PyTorch's outputs (max abs
// diff <= 1e-4) and input gradients (relative error <= 1e-3) on every engine.
func TestONNXMatchesPyTorch(t *testing.T) {
	for _, name := range []string{"mlp", "cnn", "bn_avg", "ops"} {
		var gd struct {
			InputShape []int     `json:"input_shape"`
			X          []float32 `json:"x"`
			Labels     []int     `json:"labels"`
			Logits     []float32 `json:"logits"`
			Grad       []float32 `json:"grad"`
		}
		b, err := os.ReadFile("../testdata/onnx/" + name + ".golden.json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &gd); err != nil {
			t.Fatal(err)
		}
		for _, kind := range engine.Kinds() {
			t.Run(name+"/"+kind, func(t *testing.T) {
				m, err := Load("../testdata/onnx/"+name+".onnx", kind)
				if err != nil {
					t.Fatal(err)
				}
				if m.OutputIsProbabilities != (name == "bn_avg") {
					t.Errorf("OutputIsProbabilities = %v", m.OutputIsProbabilities)
				}
				_, grad, logits, err := m.Net.LossGradient(gd.X, gd.Labels, gd.InputShape[0])
				if err != nil {
					t.Fatal(err)
				}
				if d := testutil.MaxAbsDiff(logits, gd.Logits); d > 1e-4 {
					t.Errorf("outputs differ from PyTorch by up to %g", d)
				}
				if r := testutil.RelErr(grad, gd.Grad); r > 1e-3 {
					t.Errorf("input gradient relative error %g", r)
				}
			})
		}
	}
}
