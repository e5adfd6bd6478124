//go:build goexperiment.simd && amd64

package blas

import "simd/archsimd"

// AVX-512 versions of the elementwise kernels that profiles showed to
// matter: the relu epilogues and masks, gradient accumulation and the 2x2
// max pool. Each works 16 floats at a time and finishes with a masked
// partial vector, so short rows (a 14-wide pooled image) stay vectorised.

var hasAVX512 = archsimd.X86.AVX512()

func addTo(dst, src []float32) {
	if !hasAVX512 {
		addToGeneric(dst, src)
		return
	}
	src = src[:len(dst)]
	i := 0
	for ; i+16 <= len(dst); i += 16 {
		archsimd.LoadFloat32x16Slice(dst[i:]).Add(archsimd.LoadFloat32x16Slice(src[i:])).StoreSlice(dst[i:])
	}
	if i < len(dst) {
		archsimd.LoadFloat32x16SlicePart(dst[i:]).Add(archsimd.LoadFloat32x16SlicePart(src[i:])).StoreSlicePart(dst[i:])
	}
}

func maskRelu(y, dy []float32) {
	if !hasAVX512 {
		maskReluGeneric(y, dy)
		return
	}
	dy = dy[:len(y)]
	var zero archsimd.Float32x16
	i := 0
	for ; i+16 <= len(y); i += 16 {
		pos := archsimd.LoadFloat32x16Slice(y[i:]).Greater(zero)
		archsimd.LoadFloat32x16Slice(dy[i:]).Masked(pos).StoreSlice(dy[i:])
	}
	if i < len(y) {
		pos := archsimd.LoadFloat32x16SlicePart(y[i:]).Greater(zero)
		archsimd.LoadFloat32x16SlicePart(dy[i:]).Masked(pos).StoreSlicePart(dy[i:])
	}
}

func addBias(row []float32, b float32, relu bool) {
	if !hasAVX512 {
		addBiasGeneric(row, b, relu)
		return
	}
	bv := archsimd.BroadcastFloat32x16(b)
	var zero archsimd.Float32x16
	i := 0
	for ; i+16 <= len(row); i += 16 {
		v := archsimd.LoadFloat32x16Slice(row[i:]).Add(bv)
		if relu {
			v = v.Max(zero)
		}
		v.StoreSlice(row[i:])
	}
	if i < len(row) {
		v := archsimd.LoadFloat32x16SlicePart(row[i:]).Add(bv)
		if relu {
			v = v.Max(zero)
		}
		v.StoreSlicePart(row[i:])
	}
}

func reluForward(x, y []float32) {
	if !hasAVX512 {
		reluForwardGeneric(x, y)
		return
	}
	y = y[:len(x)]
	var zero archsimd.Float32x16
	i := 0
	for ; i+16 <= len(x); i += 16 {
		archsimd.LoadFloat32x16Slice(x[i:]).Max(zero).StoreSlice(y[i:])
	}
	if i < len(x) {
		archsimd.LoadFloat32x16SlicePart(x[i:]).Max(zero).StoreSlicePart(y[i:])
	}
}

func reluBackward(y, dy, dx []float32, acc bool) {
	if !hasAVX512 {
		reluBackwardGeneric(y, dy, dx, acc)
		return
	}
	dy, dx = dy[:len(y)], dx[:len(y)]
	var zero archsimd.Float32x16
	step := func(y, dy, dx archsimd.Float32x16) archsimd.Float32x16 {
		g := dy.Masked(y.Greater(zero))
		if acc {
			g = g.Add(dx)
		}
		return g
	}
	i := 0
	for ; i+16 <= len(y); i += 16 {
		var d archsimd.Float32x16
		if acc {
			d = archsimd.LoadFloat32x16Slice(dx[i:])
		}
		step(archsimd.LoadFloat32x16Slice(y[i:]), archsimd.LoadFloat32x16Slice(dy[i:]), d).StoreSlice(dx[i:])
	}
	if i < len(y) {
		var d archsimd.Float32x16
		if acc {
			d = archsimd.LoadFloat32x16SlicePart(dx[i:])
		}
		step(archsimd.LoadFloat32x16SlicePart(y[i:]), archsimd.LoadFloat32x16SlicePart(dy[i:]), d).StoreSlicePart(dx[i:])
	}
}

// Lane selections for the 2x2 pool: the even and odd elements of a pair of
// vectors (32 consecutive inputs), and the interleaving that undoes it.
var (
	evenIdx = archsimd.LoadUint32x16(&[16]uint32{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30})
	oddIdx  = archsimd.LoadUint32x16(&[16]uint32{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31})
	zipLo   = archsimd.LoadUint32x16(&[16]uint32{0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23})
	zipHi   = archsimd.LoadUint32x16(&[16]uint32{8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31})
)

// pairs loads 2n inputs of a row (n <= 16) and returns its even and odd
// elements: the left and right members of n horizontal pairs.
func pairs(row []float32, n int) (even, odd archsimd.Float32x16) {
	var a, b archsimd.Float32x16
	if n == 16 {
		a, b = archsimd.LoadFloat32x16Slice(row), archsimd.LoadFloat32x16Slice(row[16:])
	} else {
		a = archsimd.LoadFloat32x16SlicePart(row[:min(2*n, 16)])
		if 2*n > 16 {
			b = archsimd.LoadFloat32x16SlicePart(row[16 : 2*n])
		}
	}
	return a.ConcatPermute(b, evenIdx), a.ConcatPermute(b, oddIdx)
}

// storePairs interleaves even and odd back into 2n consecutive outputs.
func storePairs(row []float32, n int, even, odd archsimd.Float32x16) {
	lo, hi := even.ConcatPermute(odd, zipLo), even.ConcatPermute(odd, zipHi)
	if n == 16 {
		lo.StoreSlice(row)
		hi.StoreSlice(row[16:])
		return
	}
	lo.StoreSlicePart(row[:min(2*n, 16)])
	if 2*n > 16 {
		hi.StoreSlicePart(row[16 : 2*n])
	}
}

func max2x2(x, y []float32, w int) {
	if !hasAVX512 {
		max2x2Generic(x, y, w)
		return
	}
	wo := w / 2
	for oh := range len(y) / wo {
		r0 := x[2*oh*w : 2*oh*w+w]
		r1 := x[2*oh*w+w : 2*oh*w+2*w]
		out := y[oh*wo : oh*wo+wo]
		for ow := 0; ow < wo; ow += 16 {
			n := min(16, wo-ow)
			a, b := pairs(r0[2*ow:], n)
			c, d := pairs(r1[2*ow:], n)
			m := a.Max(b).Max(c.Max(d))
			if n == 16 {
				m.StoreSlice(out[ow:])
			} else {
				m.StoreSlicePart(out[ow : ow+n])
			}
		}
	}
}

// max2x2Backward writes each window's gradient to its first maximal
// element (row-major order) and zeros to the other three, as the generic
// version does, with the choice made by lane masks instead of branches.
func max2x2Backward(x, dy, dx []float32, w int) {
	if !hasAVX512 {
		max2x2BackwardGeneric(x, dy, dx, w)
		return
	}
	wo := w / 2
	for oh := range len(dy) / wo {
		r0 := x[2*oh*w : 2*oh*w+w]
		r1 := x[2*oh*w+w : 2*oh*w+2*w]
		d0 := dx[2*oh*w : 2*oh*w+w]
		d1 := dx[2*oh*w+w : 2*oh*w+2*w]
		g := dy[oh*wo : oh*wo+wo]
		for ow := 0; ow < wo; ow += 16 {
			n := min(16, wo-ow)
			a, b := pairs(r0[2*ow:], n)
			c, d := pairs(r1[2*ow:], n)
			m := a.Max(b).Max(c.Max(d))
			var gv archsimd.Float32x16
			if n == 16 {
				gv = archsimd.LoadFloat32x16Slice(g[ow:])
			} else {
				gv = archsimd.LoadFloat32x16SlicePart(g[ow : ow+n])
			}
			ba := a.Equal(m).ToBits()
			bb := b.Equal(m).ToBits() &^ ba
			bc := c.Equal(m).ToBits() &^ (ba | bb)
			bd := ^(ba | bb | bc)
			storePairs(d0[2*ow:], n, gv.Masked(archsimd.Mask32x16FromBits(ba)), gv.Masked(archsimd.Mask32x16FromBits(bb)))
			storePairs(d1[2*ow:], n, gv.Masked(archsimd.Mask32x16FromBits(bc)), gv.Masked(archsimd.Mask32x16FromBits(bd)))
		}
	}
}

// sum adds up x with 16 running sums.
func sum(x []float32) float32 {
	if !hasAVX512 {
		return sumGeneric(x)
	}
	var acc archsimd.Float32x16
	i := 0
	for ; i+16 <= len(x); i += 16 {
		acc = acc.Add(archsimd.LoadFloat32x16Slice(x[i:]))
	}
	if i < len(x) {
		acc = acc.Add(archsimd.LoadFloat32x16SlicePart(x[i:]))
	}
	var lanes [16]float32
	acc.Store(&lanes)
	s := float32(0)
	for _, v := range lanes {
		s += v
	}
	return s
}

// copyShort is copy(dst, src) for the short rows of im2col (a few dozen
// floats), where a call to memmove costs more than the copy.
func copyShort(dst, src []float32) {
	if !hasAVX512 || len(dst) > 64 {
		copy(dst, src)
		return
	}
	src = src[:len(dst)]
	i := 0
	for ; i+16 <= len(dst); i += 16 {
		archsimd.LoadFloat32x16Slice(src[i:]).StoreSlice(dst[i:])
	}
	if i < len(dst) {
		archsimd.LoadFloat32x16SlicePart(src[i:]).StoreSlicePart(dst[i:])
	}
}

// adam is adamGeneric 16 lanes at a time, with the same operations in the
// same order (separate multiplies and adds, an exact square root), so the
// results are bit-identical.
func adam(w, g, m, v []float32, k adamConsts) {
	if !hasAVX512 {
		adamGeneric(w, g, m, v, k)
		return
	}
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	b1, ob1 := archsimd.BroadcastFloat32x16(k.b1), archsimd.BroadcastFloat32x16(k.ob1)
	b2, ob2 := archsimd.BroadcastFloat32x16(k.b2), archsimd.BroadcastFloat32x16(k.ob2)
	c1, c2 := archsimd.BroadcastFloat32x16(k.c1), archsimd.BroadcastFloat32x16(k.c2)
	eps, wd, lr := archsimd.BroadcastFloat32x16(k.eps), archsimd.BroadcastFloat32x16(k.wd), archsimd.BroadcastFloat32x16(k.lr)
	i := 0
	for ; i+16 <= len(w); i += 16 {
		gi := archsimd.LoadFloat32x16Slice(g[i:])
		mi := archsimd.LoadFloat32x16Slice(m[i:]).Mul(b1).Add(gi.Mul(ob1))
		vi := archsimd.LoadFloat32x16Slice(v[i:]).Mul(b2).Add(gi.Mul(gi).Mul(ob2))
		mi.StoreSlice(m[i:])
		vi.StoreSlice(v[i:])
		upd := mi.Div(c1).Div(vi.Div(c2).Sqrt().Add(eps))
		wi := archsimd.LoadFloat32x16Slice(w[i:])
		if k.wd != 0 {
			upd = upd.Add(wi.Mul(wd))
		}
		wi.Sub(lr.Mul(upd)).StoreSlice(w[i:])
	}
	adamGeneric(w[i:], g[i:], m[i:], v[i:], k)
}

// sumSquares is Σ x² with 16 float32 running sums (fused multiply-adds),
// the lanes added in float64: per-example gradient norms for DP-SGD.
func sumSquares(x []float32) float64 {
	if !hasAVX512 {
		return sumSquaresGeneric(x)
	}
	var acc archsimd.Float32x16
	i := 0
	for ; i+16 <= len(x); i += 16 {
		v := archsimd.LoadFloat32x16Slice(x[i:])
		acc = v.MulAdd(v, acc)
	}
	if i < len(x) {
		v := archsimd.LoadFloat32x16SlicePart(x[i:])
		acc = v.MulAdd(v, acc)
	}
	var lanes [16]float32
	acc.Store(&lanes)
	s := 0.0
	for _, v := range lanes {
		s += float64(v)
	}
	return s
}

// axpy is dst += a·src (fused multiply-adds).
func axpy(dst []float32, a float32, src []float32) {
	if !hasAVX512 {
		axpyGeneric(dst, a, src)
		return
	}
	src = src[:len(dst)]
	av := archsimd.BroadcastFloat32x16(a)
	i := 0
	for ; i+16 <= len(dst); i += 16 {
		archsimd.LoadFloat32x16Slice(src[i:]).MulAdd(av, archsimd.LoadFloat32x16Slice(dst[i:])).StoreSlice(dst[i:])
	}
	if i < len(dst) {
		archsimd.LoadFloat32x16SlicePart(src[i:]).MulAdd(av, archsimd.LoadFloat32x16SlicePart(dst[i:])).StoreSlicePart(dst[i:])
	}
}
