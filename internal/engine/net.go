package engine

import (
	"fmt"

	"github.com/bulwark-sec/bulwark/nn"
)

// Net is a compiled model on one of the engines. Everything above the engine
// (training, evaluation, attacks) works through this interface.
type Net interface {
	Graph() *nn.Graph
	NumClasses() int
	InputSize() int
	// Params returns a copy of the graph holding the current parameters.
	Params() (*nn.Graph, error)
	SetParams(g *nn.Graph) error
	// Logits runs n examples (NCHW for images) and returns n*NumClasses values.
	Logits(x []float32, n int) ([]float32, error)
	// LossGradient returns per-example cross-entropy, d(sum of losses)/dx and
	// the logits.
	LossGradient(x []float32, labels []int, n int) (losses, grad, logits []float32, err error)
	// ParamGradients returns d(sum of losses)/dθ for every trainable parameter.
	ParamGradients(x []float32, labels []int, n int) (map[string][]float32, error)
}

// Trainer runs optimisation steps on a Net's parameters.
type Trainer interface {
	Step(x []float32, labels []int, n int, lr float32) (nn.StepResult, error)
	Steps() int
	State() (nn.OptimizerState, error)
	Restore(st nn.OptimizerState) error
}

var (
	_ Net     = (*Model)(nil)
	_ Trainer = (*ModelTrainer)(nil)
)

// Kinds lists the engines New accepts.
var Kinds = []string{"auto", "gomlx"}

// New compiles g on the named engine; "" or "auto" picks the default.
func New(g *nn.Graph, kind string) (Net, error) {
	switch kind {
	case "", "auto", "gomlx":
		return Compile(g)
	}
	return nil, fmt.Errorf("unknown engine %q (one of %v)", kind, Kinds)
}

// NewTrainer prepares training on any engine's Net.
func NewTrainerFor(n Net, opt nn.Optimizer) (Trainer, error) {
	switch m := n.(type) {
	case *Model:
		return NewTrainer(m, opt)
	}
	return nil, fmt.Errorf("no trainer for %T", n)
}

// Name says which engine runs n, for provenance and `bulwark version`.
func Name(n Net) string {
	switch n.(type) {
	case *Model:
		return "gomlx"
	}
	return fmt.Sprintf("%T", n)
}

// Describe names the default engine and its backend, for `bulwark version`.
func Describe() string {
	return "gomlx: " + BackendName()
}

// PerExampleGradients returns each example's own parameter gradients (n
// blocks per parameter, example-major). Engines with a batched method (the
// batch trick) use it; otherwise each example is differentiated alone.
func PerExampleGradients(n Net, x []float32, labels []int, count int) (map[string][]float32, error) {
	if pe, ok := n.(interface {
		PerExampleGradients(x []float32, labels []int, n int) (map[string][]float32, error)
	}); ok {
		return pe.PerExampleGradients(x, labels, count)
	}
	size := n.InputSize()
	if len(x) != count*size || len(labels) != count {
		return nil, fmt.Errorf("%d values and %d labels for %d examples of size %d", len(x), len(labels), count, size)
	}
	out := map[string][]float32{}
	for i := 0; i < count; i++ {
		g, err := n.ParamGradients(x[i*size:(i+1)*size], labels[i:i+1], 1)
		if err != nil {
			return nil, err
		}
		for k, v := range g {
			out[k] = append(out[k], v...)
		}
	}
	return out, nil
}
