package blas

import "math"

// Plain Go versions of the elementwise kernels. simd_amd64.go replaces the
// hot ones with AVX-512 code when the CPU has it; these are the reference
// and the fallback (other CPUs, builds without GOEXPERIMENT=simd).

func addToGeneric(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}

func maskReluGeneric(y, dy []float32) {
	dy = dy[:len(y)]
	for i, v := range y {
		if v <= 0 {
			dy[i] = 0
		}
	}
}

func addBiasGeneric(row []float32, b float32, relu bool) {
	if relu {
		for j, v := range row {
			row[j] = max(v+b, 0)
		}
		return
	}
	for j := range row {
		row[j] += b
	}
}

func reluForwardGeneric(x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] = max(v, 0)
	}
}

func reluBackwardGeneric(y, dy, dx []float32, acc bool) {
	dy, dx = dy[:len(y)], dx[:len(y)]
	if acc {
		for i, v := range y {
			if v > 0 {
				dx[i] += dy[i]
			}
		}
		return
	}
	for i, v := range y {
		g := dy[i]
		if v <= 0 {
			g = 0
		}
		dx[i] = g
	}
}

func max2x2Generic(x, y []float32, w int) {
	wo := w / 2
	for oh := range len(y) / wo {
		r0 := x[2*oh*w : 2*oh*w+w]
		r1 := x[2*oh*w+w : 2*oh*w+2*w]
		out := y[oh*wo : oh*wo+wo]
		for ow := range out {
			j := 2 * ow
			out[ow] = max(max(r0[j], r0[j+1]), max(r1[j], r1[j+1]))
		}
	}
}

func max2x2BackwardGeneric(x, dy, dx []float32, w int) {
	wo := w / 2
	for oh := range len(dy) / wo {
		r0, r1 := 2*oh*w, 2*oh*w+w
		for ow, g := range dy[oh*wo : oh*wo+wo] {
			j := 2 * ow
			a, b, c, d := x[r0+j], x[r0+j+1], x[r1+j], x[r1+j+1]
			ga, gb, gc, gd := float32(0), float32(0), float32(0), float32(0)
			switch m := max(max(a, b), max(c, d)); m {
			case a:
				ga = g
			case b:
				gb = g
			case c:
				gc = g
			default:
				gd = g
			}
			dx[r0+j], dx[r0+j+1], dx[r1+j], dx[r1+j+1] = ga, gb, gc, gd
		}
	}
}

func sumGeneric(x []float32) float32 {
	s := float32(0)
	for _, v := range x {
		s += v
	}
	return s
}

// adamConsts are one Adam step's constants, rounded to float32 as the
// GoMLX engine rounds them.
type adamConsts struct {
	b1, ob1, b2, ob2 float32 // β1, 1-β1, β2, 1-β2
	c1, c2           float32 // bias corrections 1-β1^t, 1-β2^t
	eps, wd, lr      float32
}

// adamGeneric updates w, m and v in place from gradient g:
// m = β1·m + (1-β1)·g, v = β2·v + (1-β2)·g², and
// w -= lr·((m/c1)/(√(v/c2)+ε) + wd·w).
func adamGeneric(w, g, m, v []float32, k adamConsts) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for i := range w {
		mi := m[i]*k.b1 + g[i]*k.ob1
		vi := v[i]*k.b2 + g[i]*g[i]*k.ob2
		m[i], v[i] = mi, vi
		upd := (mi / k.c1) / (float32(math.Sqrt(float64(vi/k.c2))) + k.eps)
		if k.wd != 0 {
			upd += w[i] * k.wd
		}
		w[i] -= k.lr * upd
	}
}

// sumSquaresGeneric is Σ x², accumulated in float64.
func sumSquaresGeneric(x []float32) float64 {
	s := 0.0
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s
}

// axpyGeneric is dst += a·src.
func axpyGeneric(dst []float32, a float32, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += a * src[i]
	}
}
