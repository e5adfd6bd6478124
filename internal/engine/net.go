package engine

import (
	"fmt"
	"sort"
	"strings"

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
	// InputGradient returns d/dx of Σ_i Σ_k dz[i,k]·logits[i,k] and the
	// logits, where seed(i, logits_i, dz_i) chooses example i's weights dz_i
	// (zeroed before the call) from its logits. Attacks build their losses
	// on it.
	InputGradient(x []float32, n int, seed func(i int, logits, dz []float32)) (grad, logits []float32, err error)
	// ParamGradients returns d(sum of losses)/dθ for every trainable parameter.
	ParamGradients(x []float32, labels []int, n int) (map[string][]float32, error)
}

// Trainer runs optimisation steps on a Net's parameters.
type Trainer interface {
	Step(x []float32, labels []int, n int, lr float32) (nn.StepResult, error)
	Steps() int
	// Apply runs one optimizer step with the given gradients (one per
	// trainable parameter, by name) instead of a batch's: DP-SGD passes
	// its clipped, noised average. It counts as a step like Step.
	Apply(grads map[string][]float32, lr float32) error
	State() (nn.OptimizerState, error)
	Restore(st nn.OptimizerState) error
}

// SeedParamGrader is a Net that gives parameter gradients of any loss
// built on the logits, as InputGradient does for the input: the gradient of
// Σ_i Σ_k dz[i,k]·logits[i,k] with respect to every trainable parameter,
// seed(i, logits_i, dz_i) choosing example i's weights dz_i (zeroed before
// the call), and the logits (inference-mode forward pass). Both engines
// have it; TRADES needs it for its KL term.
type SeedParamGrader interface {
	SeededParamGradients(x []float32, n int, seed func(i int, logits, dz []float32)) (map[string][]float32, []float32, error)
}

var (
	_ Net             = (*Model)(nil)
	_ Clipper         = (*Model)(nil)
	_ SeedParamGrader = (*Model)(nil)
	_ Trainer         = (*ModelTrainer)(nil)
)

// Backend is an engine other than the built-in GoMLX one, registered by its
// package's init (internal/engine/blas registers "blas"); a program links
// it in with a blank import. Priority orders the choice of "auto": the
// highest registered wins, GoMLX has 0.
type Backend struct {
	Name       string
	Priority   int
	Describe   func() string
	Compile    func(g *nn.Graph) (Net, error)
	NewTrainer func(n Net, opt nn.Optimizer) (Trainer, error)
	Owns       func(n Net) bool
}

var backends []Backend

// Register adds an engine. It is called from init functions.
func Register(b Backend) {
	backends = append(backends, b)
	sort.SliceStable(backends, func(i, j int) bool { return backends[i].Priority > backends[j].Priority })
}

// Kinds lists the engine names New accepts.
func Kinds() []string {
	k := []string{"auto", "gomlx"}
	for _, b := range backends {
		k = append(k, b.Name)
	}
	return k
}

// New compiles g on the named engine; "" or "auto" picks the one with the
// highest priority.
func New(g *nn.Graph, kind string) (Net, error) {
	switch kind {
	case "", "auto":
		if len(backends) > 0 && backends[0].Priority > 0 {
			return backends[0].Compile(g)
		}
		return Compile(g)
	case "gomlx":
		return Compile(g)
	}
	for _, b := range backends {
		if b.Name == kind {
			return b.Compile(g)
		}
	}
	return nil, fmt.Errorf("unknown engine %q (one of %v)", kind, Kinds())
}

// NewTrainerFor prepares training on any engine's Net.
func NewTrainerFor(n Net, opt nn.Optimizer) (Trainer, error) {
	if m, ok := n.(*Model); ok {
		return NewTrainer(m, opt)
	}
	for _, b := range backends {
		if b.Owns(n) {
			return b.NewTrainer(n, opt)
		}
	}
	return nil, fmt.Errorf("no trainer for %T", n)
}

// Name says which engine runs n, for provenance.
func Name(n Net) string {
	if _, ok := n.(*Model); ok {
		return "gomlx"
	}
	for _, b := range backends {
		if b.Owns(n) {
			return b.Name
		}
	}
	return fmt.Sprintf("%T", n)
}

// Describe lists the engines, the default ("auto") first, for `bulwark version`.
func Describe() string {
	var parts []string
	for _, b := range backends {
		if b.Priority > 0 {
			parts = append(parts, b.Name+" (default): "+b.Describe())
		}
	}
	parts = append(parts, "gomlx: "+BackendName())
	for _, b := range backends {
		if b.Priority <= 0 {
			parts = append(parts, b.Name+": "+b.Describe())
		}
	}
	return strings.Join(parts, "; ")
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
