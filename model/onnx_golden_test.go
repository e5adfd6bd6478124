package model

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/engine"
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
				if d := maxAbsDiff(logits, gd.Logits); d > 1e-4 {
					t.Errorf("outputs differ from PyTorch by up to %g", d)
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
