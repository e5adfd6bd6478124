package preprocess

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse builds a preprocessor from a command-line spec: "bitdepth:B"
// (B bits over the input range [lo, hi]), "median:K" (K×K median filter)
// or "noise:SIGMA" (Gaussian noise, seeded with seed).
func Parse(spec string, lo, hi float32, seed uint64) (Preprocessor, error) {
	name, arg, ok := strings.Cut(strings.TrimSpace(spec), ":")
	if !ok {
		return nil, fmt.Errorf("defense %q: want bitdepth:B, median:K or noise:SIGMA", spec)
	}
	switch strings.ToLower(name) {
	case "bitdepth", "bit_depth", "bits":
		b, err := strconv.Atoi(arg)
		if err != nil {
			return nil, fmt.Errorf("defense %q: bits must be an integer", spec)
		}
		return NewBitDepth(b, lo, hi)
	case "median", "median_filter":
		k, err := strconv.Atoi(arg)
		if err != nil {
			return nil, fmt.Errorf("defense %q: the window must be an integer", spec)
		}
		return NewMedian(k)
	case "noise", "gaussian", "gaussian_noise":
		s, err := strconv.ParseFloat(arg, 64)
		if err != nil {
			return nil, fmt.Errorf("defense %q: sigma must be a number", spec)
		}
		return NewGaussian(s, seed)
	}
	return nil, fmt.Errorf("unknown defense %q: want bitdepth:B, median:K or noise:SIGMA", name)
}

// Spec is p in the form Parse reads ("bitdepth:4", "median:2",
// "noise:0.25"), or its Describe string for a preprocessor Parse does not
// know.
func Spec(p Preprocessor) string {
	switch q := p.(type) {
	case *BitDepth:
		return "bitdepth:" + strconv.Itoa(q.Bits)
	case *Median:
		return "median:" + strconv.Itoa(q.K)
	case *Gaussian:
		return "noise:" + strconv.FormatFloat(q.Sigma, 'g', -1, 64)
	}
	return Describe(p)
}
