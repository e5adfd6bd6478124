package blas

import (
	"fmt"
	"os"

	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/nn"
)

// Registering makes "blas" an engine choice wherever this package is linked
// in (model/engines.go does it for the binary). With OpenBLAS it is the
// default: 3-8x faster than the GoMLX engine on this project's models
// (BENCHMARKS.md). Without cgo it stays available but below GoMLX.
func init() {
	if os.Getenv("BULWARK_BLAS_THREADED") == "1" {
		useThreadedBLAS(true)
	}
	prio := 10
	if !Available() {
		prio = -1
	}
	engine.Register(engine.Backend{
		Name:     "blas",
		Priority: prio,
		Describe: func() string { return "hand-written kernels, OpenBLAS sgemm (" + blasConfig() + ")" },
		Compile:  func(g *nn.Graph) (engine.Net, error) { return Compile(g) },
		NewTrainer: func(n engine.Net, opt nn.Optimizer) (engine.Trainer, error) {
			m, ok := n.(*Model)
			if !ok {
				return nil, fmt.Errorf("blas: cannot train a %T", n)
			}
			return NewTrainer(m, opt)
		},
		Owns: func(n engine.Net) bool { _, ok := n.(*Model); return ok },
	})
}

var (
	_ engine.Net     = (*Model)(nil)
	_ engine.Trainer = (*Trainer)(nil)
)
