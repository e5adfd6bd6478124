package dpsgd

import (
	"math/rand/v2"
	"testing"

	"github.com/bulwark-sec/bulwark/data"
	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/nn"
)

// BenchmarkStep times, on the blas engine at batch 256 of 28x28x1, a
// normal Adam training step ("train_step") against a whole DP-SGD step on
// the same 256 examples ("dp_step": gather, per-example clipping, noise,
// Adam). Variants: "dp_step_per_layer" clips per layer, "dp_step_secure"
// draws crypto/rand-keyed noise, "dp_step_poisson" samples its batch with
// q = 256/N, so its size varies (padding and a second physical batch when
// it exceeds 256). The ratio dp_step/train_step is DP-SGD's overhead.
//
//	GOEXPERIMENT=simd go test ./defense/dpsgd -run '^$' -bench Step -count 5
func BenchmarkStep(b *testing.B) {
	const n, batch = 1024, 256
	rng := rand.New(rand.NewPCG(1, 1))
	d := &data.Dataset{Shape: []int{1, 28, 28}, Classes: make([]string, 10)}
	for range n * 784 {
		d.X = append(d.X, rng.Float32())
	}
	for range n {
		d.Y = append(d.Y, rng.IntN(10))
	}
	idx := rng.Perm(n)[:batch]
	x := make([]float32, 0, batch*784)
	y := make([]int, 0, batch)
	for _, i := range idx {
		x = append(x, d.Example(i)...)
		y = append(y, d.Y[i])
	}
	for _, arch := range []string{"mlp", "cnn"} {
		g, err := nn.Build(arch, d.Shape, 10, 1)
		if err != nil {
			b.Fatal(err)
		}
		for _, what := range []string{"train_step", "dp_step", "dp_step_per_layer", "dp_step_secure", "dp_step_poisson"} {
			b.Run("blas/"+arch+"/"+what, func(b *testing.B) {
				net, err := engine.New(g.Clone(), "blas")
				if err != nil {
					b.Fatal(err)
				}
				tr, err := engine.NewTrainerFor(net, nn.Optimizer{Name: "adam"})
				if err != nil {
					b.Fatal(err)
				}
				c := Defaults(arch)
				c.PerLayer = what == "dp_step_per_layer"
				c.Delta = 1e-4
				c, s, err := resolve(c, n)
				if err != nil {
					b.Fatal(err)
				}
				st := &stepper{cfg: c, s: s, net: net, tr: tr, set: d, rnd: randomness{seed: 1, secure: what == "dp_step_secure"}}
				for _, i := range g.Trainable() {
					st.names = append(st.names, g.Params[i].Name)
					st.sizes = append(st.sizes, g.Params[i].Size())
				}
				step := 0
				run := func() error {
					step++
					if what == "train_step" {
						_, err := tr.Step(x, y, batch, 1e-3)
						return err
					}
					batch := idx
					if what == "dp_step_poisson" {
						batch = st.sample(step, 0, nil)
					}
					_, err := st.step(step, batch, 1e-3)
					return err
				}
				if err := run(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					if err := run(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkNoise times the noise of one step for the mlp's 269,322
// parameters (reproducible and secure mode).
func BenchmarkNoise(b *testing.B) {
	v := [][]float32{make([]float32, 784*256), make([]float32, 256*256+256+256), make([]float32, 2570)}
	for _, secure := range []bool{false, true} {
		name := "seeded"
		if secure {
			name = "secure"
		}
		b.Run(name, func(b *testing.B) {
			r := randomness{seed: 1, secure: secure}
			for i := range b.N {
				r.noisyMean(v, 1, 256, i)
			}
		})
	}
}
