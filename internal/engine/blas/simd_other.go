//go:build !(goexperiment.simd && amd64)

package blas

// Without archsimd the kernels are the plain Go ones.

func addTo(dst, src []float32)                    { addToGeneric(dst, src) }
func maskRelu(y, dy []float32)                    { maskReluGeneric(y, dy) }
func addBias(row []float32, b float32, relu bool) { addBiasGeneric(row, b, relu) }
func reluForward(x, y []float32)                  { reluForwardGeneric(x, y) }
func reluBackward(y, dy, dx []float32, acc bool)  { reluBackwardGeneric(y, dy, dx, acc) }
func max2x2(x, y []float32, w int)                { max2x2Generic(x, y, w) }
func max2x2Backward(x, dy, dx []float32, w int)   { max2x2BackwardGeneric(x, dy, dx, w) }

func sum(x []float32) float32 { return sumGeneric(x) }

func copyShort(dst, src []float32) { copy(dst, src) }

func adam(w, g, m, v []float32, k adamConsts) { adamGeneric(w, g, m, v, k) }

func sumSquares(x []float32) float64 { return sumSquaresGeneric(x) }

func axpy(dst []float32, a float32, src []float32) { axpyGeneric(dst, a, src) }
