// Package testutil holds helpers shared by tests: comparisons of float
// vectors against reference values.
package testutil

import (
	"math"
	"math/rand/v2"
)

// MaxAbsDiff is max |a_i - b_i|, or +Inf when the lengths differ.
func MaxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// RelErr is ‖a−b‖ / ‖b‖, or +Inf when the lengths differ.
func RelErr(a, b []float32) float64 {
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

// RandVec returns n values drawn uniformly from [lo, hi).
func RandVec(rng *rand.Rand, n int, lo, hi float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*rng.Float64())
	}
	return v
}

// UnitVec returns a random direction of n values with L2 norm 1, for
// directional finite-difference checks: a unit step of size h moves the
// point by exactly h, so h can be chosen small enough that no ReLU changes
// side between the two evaluations.
func UnitVec(rng *rand.Rand, n int) []float32 {
	v := RandVec(rng, n, -1, 1)
	var norm float64
	for _, x := range v {
		norm += float64(x) * float64(x)
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(norm))
	}
	return v
}

// Dot is Σ a_i·b_i in float64.
func Dot(a, b []float32) float64 {
	var s float64
	for i, x := range a {
		s += float64(x) * float64(b[i])
	}
	return s
}
