package blas

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/testutil"
)

// The vectorised kernels must match the plain Go ones exactly, on every
// length (full vectors and the masked tails) and with ties in the pools.

func TestKernelsMatchGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 9))
	for _, n := range []int{1, 7, 15, 16, 17, 31, 32, 33, 100, 784} {
		x := testutil.RandVec(rng, n, -1, 1)
		y := testutil.RandVec(rng, n, -1, 1)
		for i := range x {
			if i%5 == 0 {
				x[i] = 0
			}
		}
		check := func(what string, got, want []float32) {
			t.Helper()
			if !slices.Equal(got, want) {
				t.Errorf("n=%d %s: got %v, want %v", n, what, got, want)
			}
		}
		a, b := slices.Clone(y), slices.Clone(y)
		addTo(a, x)
		addToGeneric(b, x)
		check("addTo", a, b)
		a, b = slices.Clone(y), slices.Clone(y)
		maskRelu(x, a)
		maskReluGeneric(x, b)
		check("maskRelu", a, b)
		for _, relu := range []bool{false, true} {
			a, b = slices.Clone(x), slices.Clone(x)
			addBias(a, 0.3, relu)
			addBiasGeneric(b, 0.3, relu)
			check("addBias", a, b)
		}
		if s1, s2 := sum(x), sumGeneric(x); math.Abs(float64(s1-s2)) > 1e-5*float64(n) {
			t.Errorf("n=%d sum: got %g, want %g", n, s1, s2)
		}
		a = make([]float32, n)
		copyShort(a, x)
		check("copyShort", a, x)
		k := adamConsts{b1: 0.9, ob1: 0.1, b2: 0.999, ob2: 0.001, c1: 0.271, c2: 0.003, eps: 1e-8, wd: 0.01, lr: 1e-3}
		w1, m1, v1 := slices.Clone(x), slices.Clone(y), testutil.RandVec(rng, n, 0, 1)
		w2, m2, v2 := slices.Clone(w1), slices.Clone(m1), slices.Clone(v1)
		adam(w1, y, m1, v1, k)
		adamGeneric(w2, y, m2, v2, k)
		check("adam w", w1, w2)
		check("adam m", m1, m2)
		check("adam v", v1, v2)
		a, b = make([]float32, n), make([]float32, n)
		reluForward(x, a)
		reluForwardGeneric(x, b)
		check("reluForward", a, b)
		for _, acc := range []bool{false, true} {
			a, b = slices.Clone(y), slices.Clone(y)
			reluBackward(x, y, a, acc)
			reluBackwardGeneric(x, y, b, acc)
			check("reluBackward", a, b)
		}
	}
	for _, w := range []int{2, 6, 14, 28, 32, 34, 66} {
		const h = 6
		x := testutil.RandVec(rng, h*w, -1, 1)
		for i := range x { // ties, as after a relu
			if rng.IntN(3) == 0 {
				x[i] = 0
			}
		}
		y1, y2 := make([]float32, h*w/4), make([]float32, h*w/4)
		max2x2(x, y1, w)
		max2x2Generic(x, y2, w)
		if !slices.Equal(y1, y2) {
			t.Errorf("w=%d max2x2: got %v, want %v", w, y1, y2)
		}
		dy := testutil.RandVec(rng, h*w/4, -1, 1)
		d1, d2 := testutil.RandVec(rng, h*w, -1, 1), testutil.RandVec(rng, h*w, -1, 1)
		max2x2Backward(x, dy, d1, w)
		max2x2BackwardGeneric(x, dy, d2, w)
		if !slices.Equal(d1, d2) {
			t.Errorf("w=%d max2x2Backward: got %v, want %v", w, d1, d2)
		}
	}
}

func BenchmarkKernelMax2x2Backward(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 9))
	x := testutil.RandVec(rng, 32*28*28, -1, 1)
	dy := testutil.RandVec(rng, 32*14*14, -1, 1)
	dx := make([]float32, len(x))
	b.Run("simd", func(b *testing.B) {
		for range b.N {
			for p := range 32 {
				max2x2Backward(x[p*784:(p+1)*784], dy[p*196:(p+1)*196], dx[p*784:(p+1)*784], 28)
			}
		}
	})
	b.Run("generic", func(b *testing.B) {
		for range b.N {
			for p := range 32 {
				max2x2BackwardGeneric(x[p*784:(p+1)*784], dy[p*196:(p+1)*196], dx[p*784:(p+1)*784], 28)
			}
		}
	})
}

func BenchmarkKernelMaskRelu(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 9))
	y := testutil.RandVec(rng, 32*784, -1, 1)
	dy := testutil.RandVec(rng, 32*784, -1, 1)
	b.Run("simd", func(b *testing.B) {
		for range b.N {
			maskRelu(y, dy)
		}
	})
	b.Run("generic", func(b *testing.B) {
		for range b.N {
			maskReluGeneric(y, dy)
		}
	})
}
