package dpsgd

import (
	"math"
	"slices"
	"testing"
)

// TestGaussian checks the ziggurat's samples against N(0, 1): moments,
// the frequency of the tail beyond the ziggurat's base (|z| > 3.44) and
// of |z| > 2, and the Kolmogorov-Smirnov distance to the normal CDF.
func TestGaussian(t *testing.T) {
	const n = 8_000_000
	g := gaussian{randomness{seed: 5}.source(purposeNoise, 1, 2)}
	z := make([]float64, n)
	var m1, m2, m4 float64
	tail, two := 0, 0
	for i := range z {
		v := g.next()
		z[i] = v
		m1 += v
		m2 += v * v
		m4 += v * v * v * v
		if math.Abs(v) > zigR {
			tail++
		}
		if math.Abs(v) > 2 {
			two++
		}
	}
	m1, m2, m4 = m1/n, m2/n, m4/n
	// The tail's shape: E[|z| | |z| > r] = φ(r)/Q(r) (the inverse Mills ratio).
	var ts, ts2 float64
	for _, v := range z {
		if a := math.Abs(v); a > zigR {
			ts += a
			ts2 += a * a
		}
	}
	k := float64(tail)
	mills := math.Exp(-zigR*zigR/2) / math.Sqrt(2*math.Pi) / (0.5 * math.Erfc(zigR/math.Sqrt2))
	if se := math.Sqrt((ts2/k - (ts/k)*(ts/k)) / k); math.Abs(ts/k-mills) > 5*se {
		t.Errorf("tail: mean |z| %.4f, want %.4f (±%.4f)", ts/k, mills, se)
	}
	// Standard errors: mean 1/√n, variance √(2/n), fourth moment √(96/n).
	if math.Abs(m1) > 5/math.Sqrt(n) || math.Abs(m2-1) > 5*math.Sqrt(2.0/n) || math.Abs(m4-3) > 5*math.Sqrt(96.0/n) {
		t.Errorf("moments: mean %.5f, E[z²] %.5f, E[z⁴] %.5f; want 0, 1, 3", m1, m2, m4)
	}
	for _, c := range []struct {
		k   int
		at  float64
		got string
	}{{tail, zigR, "tail"}, {two, 2, "|z|>2"}} {
		p := math.Erfc(c.at / math.Sqrt2)
		if math.Abs(float64(c.k)-n*p) > 5*math.Sqrt(n*p*(1-p)) {
			t.Errorf("%s: %d samples, want %.0f", c.got, c.k, n*p)
		}
	}
	const nks = 1_000_000
	z = z[:nks]
	slices.Sort(z)
	d := 0.0
	for i, v := range z {
		f := 0.5 * math.Erfc(-v/math.Sqrt2)
		d = max(d, math.Abs(f-float64(i)/nks), math.Abs(f-float64(i+1)/nks))
	}
	if d > 1.95/math.Sqrt(nks) { // p ≈ 0.001
		t.Errorf("Kolmogorov-Smirnov distance %.5f", d)
	}
}
