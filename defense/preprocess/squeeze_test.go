package preprocess

import (
	"math"
	"slices"
	"testing"
)

func near(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("%s: got %v, want %v (first difference at %d)", what, got, want, i)
		}
	}
}

// Levels by hand: rint(x·(2^b−1))/(2^b−1), halves to even, clipped.
func TestBitDepthHand(t *testing.T) {
	x := []float32{0, 0.25, 0.5, 0.5001, 0.75, 1, -0.2, 1.3}
	b1, _ := NewBitDepth(1, 0, 1)
	near(t, "1 bit", b1.Apply(x, 1, []int{8}), []float32{0, 0, 0, 1, 1, 1, 0, 1})
	// 2 bits: levels 0, 1/3, 2/3, 1; 0.5·3 = 1.5 rounds to 2.
	b2, _ := NewBitDepth(2, 0, 1)
	near(t, "2 bits", b2.Apply([]float32{0.1, 0.2, 0.5, 0.9}, 2, []int{2}), []float32{0, 1.0 / 3, 2.0 / 3, 1})
	// The range [−1, 1] at 1 bit: −0.2 is u = 0.4 → −1, 0.2 is u = 0.6 → 1.
	bs, _ := NewBitDepth(1, -1, 1)
	near(t, "1 bit on [−1, 1]", bs.Apply([]float32{-0.2, 0.2, -1, 1}, 1, []int{4}), []float32{-1, 1, -1, 1})
	// 8 bits leaves a value already on the grid where it is.
	b8, _ := NewBitDepth(8, 0, 1)
	near(t, "8 bits", b8.Apply([]float32{37.0 / 255}, 1, []int{1}), []float32{37.0 / 255})
	if !slices.Equal(x, []float32{0, 0.25, 0.5, 0.5001, 0.75, 1, -0.2, 1.3}) {
		t.Error("Apply changed its input")
	}
	for _, bad := range []int{0, 17} {
		if _, err := NewBitDepth(bad, 0, 1); err == nil {
			t.Errorf("%d bits accepted", bad)
		}
	}
}

// scipy.ndimage.median_filter(np.arange(1, 10).reshape(3, 3), size=k)
// by hand: for k = 3 the corner (0,0) sees rows 0,0,1 and columns 0,0,1
// (reflect), {1,1,2,1,1,2,4,4,5}, median 2; for k = 2 the window is the
// pixel, the one above, left and above-left, and the median the upper
// middle value: (1,1) sees {1,2,4,5} → 4.
func TestMedianHand(t *testing.T) {
	img := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	m3, _ := NewMedian(3)
	near(t, "3×3", m3.Apply(img, 1, []int{1, 3, 3}), []float32{2, 3, 3, 4, 5, 6, 7, 7, 8})
	m2, _ := NewMedian(2)
	near(t, "2×2", m2.Apply(img, 1, []int{3, 3}), []float32{1, 2, 3, 4, 4, 5, 7, 7, 8})
	// A window of 5 on a row of 5 reaches two past the edge, where
	// "reflect" differs from "nearest": position 0 sees indices
	// 1,0,0,1,2 = {5,1,1,5,2}, median 2 (nearest would see {1,1,1,5,2}: 1).
	m5, _ := NewMedian(5)
	near(t, "5 on a row", m5.Apply([]float32{1, 5, 2, 4, 3}, 1, []int{5}), []float32{2, 2, 3, 3, 3})

	// Channels and examples are filtered separately: an isolated bright
	// pixel vanishes from its own plane and leaks into no other.
	x := make([]float32, 2*2*5*5)
	x[0*25+12] = 1      // example 0, channel 0, centre
	x[1*25+6] = 1       // example 0, channel 1
	x[2*25+0] = 1       // example 1, channel 0, corner
	for i := range 25 { // example 1, channel 1: all ones
		x[3*25+i] = 1
	}
	got := m3.Apply(x, 2, []int{2, 5, 5})
	for i, v := range got {
		want := float32(0)
		if i >= 75 {
			want = 1
		}
		if v != want {
			t.Fatalf("value %d (plane %d) is %v, want %v", i, i/25, v, want)
		}
	}
}

// Half-sample symmetric extension of [a b c]: … c b a | a b c | c b a | a …
func TestReflect(t *testing.T) {
	for _, c := range [][2]int{{-1, 0}, {-2, 1}, {-3, 2}, {-4, 2}, {0, 0}, {2, 2}, {3, 2}, {4, 1}, {5, 0}, {6, 0}} {
		if got := reflect(c[0], 3); got != c[1] {
			t.Errorf("reflect(%d, 3) = %d, want %d", c[0], got, c[1])
		}
	}
	if got := reflect(-1, 1); got != 0 {
		t.Errorf("reflect(-1, 1) = %d", got)
	}
}

// Fresh noise per call, reproducible per seed, of the asked spread.
func TestGaussianNoise(t *testing.T) {
	x := make([]float32, 20000)
	g, _ := NewGaussian(0.3, 9)
	a, b := g.Apply(x, 1, []int{len(x)}), g.Apply(x, 1, []int{len(x)})
	if slices.Equal(a, b) {
		t.Fatal("two calls drew the same noise")
	}
	g2, _ := NewGaussian(0.3, 9)
	if !slices.Equal(a, g2.Apply(x, 1, []int{len(x)})) {
		t.Fatal("the same seed drew different noise on its first call")
	}
	var s, ss float64
	for _, v := range a {
		s += float64(v)
		ss += float64(v) * float64(v)
	}
	mean, sd := s/float64(len(a)), math.Sqrt(ss/float64(len(a)))
	if math.Abs(mean) > 0.01 || math.Abs(sd-0.3) > 0.01 {
		t.Errorf("noise mean %.4f, sd %.4f, want 0 and 0.3", mean, sd)
	}
	if !IsRandomised(g) || IsRandomised(&Median{K: 3}) {
		t.Error("IsRandomised is wrong")
	}
}

func TestParse(t *testing.T) {
	for spec, want := range map[string]string{
		"bitdepth:4": "bit_depth(bits=4, hi=1, lo=0)",
		"median:2":   "median_filter(k=2)",
		"noise:0.25": "gaussian_noise(seed=3, sigma=0.25)",
	} {
		p, err := Parse(spec, 0, 1, 3)
		if err != nil {
			t.Fatal(err)
		}
		if got := Describe(p); got != want {
			t.Errorf("%s: %s, want %s", spec, got, want)
		}
		if got := Spec(p); got != spec {
			t.Errorf("Spec(Parse(%q)) = %q", spec, got)
		}
	}
	for _, bad := range []string{"median", "median:1", "bitdepth:x", "noise:-1", "jpeg:75"} {
		if _, err := Parse(bad, 0, 1, 0); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
