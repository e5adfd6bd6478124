package blas

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/bulwark-sec/bulwark/nn"
)

// The six benchmarks of internal/engine/bench_test.go (batch 128 on 28x28,
// same architectures, seeds and data), so that
//
//	GOEXPERIMENT=simd go test ./internal/engine/ ./internal/engine/blas/ -run '^$' -bench . -benchtime 3s
//
// compares the two engines side by side.

const benchBatch = 128

func benchModel(b *testing.B, arch string) (*Model, []float32, []int) {
	// BULWARK_BLAS_THREADED=1 measures the alternative threading (OpenBLAS
	// threads, convolution images on one goroutine) for parallel.go's notes.
	// (Only then: every openblas_set_num_threads call wakes OpenBLAS's idle
	// worker, which then spins in sched_yield for a while.)
	if os.Getenv("BULWARK_BLAS_THREADED") == "1" && !threadedBLAS {
		useThreadedBLAS(true)
	}
	g, err := nn.Build(arch, []int{1, 28, 28}, 10, 1)
	if err != nil {
		b.Fatal(err)
	}
	m, err := Compile(g)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	x := randVec(rng, benchBatch*784, 0, 1)
	y := make([]int, benchBatch)
	for i := range y {
		y[i] = rng.IntN(10)
	}
	return m, x, y
}

func benchInference(b *testing.B, arch string) {
	m, x, _ := benchModel(b, arch)
	if _, err := m.Logits(x, benchBatch); err != nil { // plan and buffers outside the timing
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := m.Logits(x, benchBatch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "img/s")
}

func benchInputGrad(b *testing.B, arch string) {
	m, x, y := benchModel(b, arch)
	if _, _, _, err := m.LossGradient(x, y, benchBatch); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, _, _, err := m.LossGradient(x, y, benchBatch); err != nil {
			b.Fatal(err)
		}
	}
}

func benchTrainStep(b *testing.B, arch string) {
	m, x, y := benchModel(b, arch)
	tr, err := NewTrainer(m, nn.Optimizer{Name: "adam"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tr.Step(x, y, benchBatch, 1e-3); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := tr.Step(x, y, benchBatch, 1e-3); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMLPInference(b *testing.B) { benchInference(b, "mlp") }
func BenchmarkMLPInputGrad(b *testing.B) { benchInputGrad(b, "mlp") }
func BenchmarkMLPTrainStep(b *testing.B) { benchTrainStep(b, "mlp") }
func BenchmarkCNNInference(b *testing.B) { benchInference(b, "cnn") }
func BenchmarkCNNInputGrad(b *testing.B) { benchInputGrad(b, "cnn") }
func BenchmarkCNNTrainStep(b *testing.B) { benchTrainStep(b, "cnn") }
