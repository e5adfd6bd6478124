// Package enginebench times every engine on the same models and data:
// batch 128 of 28x28x1, the mlp and cnn of the registry, for inference, the
// input gradient (d(sum of losses)/dx, what white-box attacks call) and one
// Adam training step. bench/compare.sh runs it next to bench/torch_bench.py.
//
//	GOEXPERIMENT=simd go test ./internal/engine/enginebench -run '^$' -bench .
package enginebench

import (
	"math/rand/v2"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/engine"
	_ "github.com/bulwark-sec/bulwark/internal/engine/blas"
	"github.com/bulwark-sec/bulwark/nn"
)

const batch = 128

func BenchmarkEngines(b *testing.B) {
	for _, kind := range []string{"blas", "gomlx"} {
		for _, arch := range []string{"mlp", "cnn"} {
			g, err := nn.Build(arch, []int{1, 28, 28}, 10, 1)
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 1))
			x := make([]float32, batch*784)
			for i := range x {
				x[i] = rng.Float32()
			}
			y := make([]int, batch)
			for i := range y {
				y[i] = rng.IntN(10)
			}
			steps := map[string]func(net engine.Net) func() error{
				"inference": func(net engine.Net) func() error {
					return func() error { _, err := net.Logits(x, batch); return err }
				},
				"input_grad": func(net engine.Net) func() error {
					return func() error { _, _, _, err := net.LossGradient(x, y, batch); return err }
				},
				"train_step": func(net engine.Net) func() error {
					tr, err := engine.NewTrainerFor(net, nn.Optimizer{Name: "adam"})
					if err != nil {
						b.Fatal(err)
					}
					return func() error { _, err := tr.Step(x, y, batch, 1e-3); return err }
				},
			}
			for _, what := range []string{"inference", "input_grad", "train_step"} {
				b.Run(kind+"/"+arch+"/"+what, func(b *testing.B) {
					net, err := engine.New(g.Clone(), kind)
					if err != nil {
						b.Fatal(err)
					}
					step := steps[what](net)
					if err := step(); err != nil { // compile and allocate outside the timing
						b.Fatal(err)
					}
					b.ReportAllocs()
					b.ResetTimer()
					for range b.N {
						if err := step(); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "img/s")
				})
			}
		}
	}
}
