//go:build race && goexperiment.simd && amd64

package blas

// The race detector's pointer checks (checkptr) reject archsimd's masked
// loads and stores of a slice's last few elements, which read a [16]float32
// view past the allocation (the hardware masks them; checkptr cannot know).
// Race builds therefore run the plain Go kernels.
func init() { hasAVX512 = false }
