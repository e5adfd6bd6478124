package blas

import (
	"fmt"
	"math"

	"github.com/bulwark-sec/bulwark/nn"
)

// window describes a 2-D sliding window over an NCHW tensor: the geometry
// shared by convolution and pooling.
type window struct {
	c, h, w  int // input channels and size
	kh, kw   int
	sh, sw   int
	pt, pl   int // top and left padding (bottom and right only change ho, wo)
	ho, wo   int
	pix      int // ho·wo
	inPlane  int // h·w
	outPlane int // one output image (convolution: O·ho·wo)
}

func strides2(s []int) ([2]int, error) {
	if len(s) == 0 {
		return [2]int{1, 1}, nil
	}
	if len(s) != 2 || s[0] < 1 || s[1] < 1 {
		return [2]int{}, fmt.Errorf("strides %v: need two positive values", s)
	}
	return [2]int{s[0], s[1]}, nil
}

func pads4(p []int) ([4]int, error) {
	if len(p) == 0 {
		return [4]int{}, nil
	}
	if len(p) != 4 {
		return [4]int{}, fmt.Errorf("pads %v: need [top, left, bottom, right]", p)
	}
	for _, v := range p {
		if v < 0 {
			return [4]int{}, fmt.Errorf("pads %v: negative padding", p)
		}
	}
	return [4]int{p[0], p[1], p[2], p[3]}, nil
}

func newWindow(x []int, kh, kw int, s [2]int, p [4]int) (window, error) {
	if len(x) != 4 {
		return window{}, fmt.Errorf("expected a 4-D (NCHW) tensor, got shape %v", x)
	}
	win := window{c: x[1], h: x[2], w: x[3], kh: kh, kw: kw, sh: s[0], sw: s[1], pt: p[0], pl: p[1]}
	ph, pw := win.h+p[0]+p[2], win.w+p[1]+p[3]
	if ph < kh || pw < kw {
		return window{}, fmt.Errorf("kernel %dx%d is larger than the (padded) input %dx%d", kh, kw, ph, pw)
	}
	win.ho, win.wo = (ph-kh)/s[0]+1, (pw-kw)/s[1]+1
	win.pix = win.ho * win.wo
	win.inPlane = win.h * win.w
	return win, nil
}

// span returns the output columns [lo, hi) whose input column
// o·stride + off falls inside [0, size).
func span(off, stride, size, outSize int) (lo, hi int) {
	if off < 0 {
		lo = (-off + stride - 1) / stride
	}
	if size-1-off >= 0 {
		hi = (size-1-off)/stride + 1
	}
	hi = min(hi, outSize)
	lo = min(lo, hi)
	return lo, hi
}

// convOp is a 2-D convolution over NCHW, one image at a time: im2col turns
// the image into a [C·kh·kw, Ho·Wo] matrix and one sgemm with the weight
// [O, C·kh·kw] gives the output image [O, Ho·Wo] directly in NCHW, so no
// layout changes are ever needed. Backward recomputes the columns (cheaper
// than keeping a batch of them) for dW = dY·colsᵀ, and scatters
// dcols = Wᵀ·dY back with col2im for dX. Images are split across workers.
type convOp struct {
	opBase
	window
	o, k    int // output channels, C·kh·kw
	direct  bool
	hasBias bool
	// dwBuf, dbBuf: per-worker partial weight and bias gradients (arena
	// buffers of workers·O·K and workers·O), summed after the batch. In a
	// per-example plan they hold every example's own gradients instead
	// (B·O·K and B·O), and sqBuf each example's squared gradient norm.
	dwBuf, dbBuf, sqBuf int
}

func (p *plan) newConv(ins []int, a nn.Attrs) (op, []int, error) {
	x, wt := p.shape(ins[0]), p.shape(ins[1])
	if len(wt) != 4 {
		return nil, nil, fmt.Errorf("conv weight must be [out, in, kh, kw], got %v", wt)
	}
	if a.Group > 1 {
		return nil, nil, fmt.Errorf("grouped convolution (group=%d) is not supported", a.Group)
	}
	for _, d := range a.Dilations {
		if d != 1 {
			return nil, nil, fmt.Errorf("dilated convolution (dilations=%v) is not supported", a.Dilations)
		}
	}
	if len(x) != 4 {
		return nil, nil, fmt.Errorf("expected a 4-D (NCHW) tensor, got shape %v", x)
	}
	if x[1] != wt[1] {
		return nil, nil, fmt.Errorf("input has %d channels but the weight expects %d", x[1], wt[1])
	}
	s, err := strides2(a.Strides)
	if err != nil {
		return nil, nil, err
	}
	pd, err := pads4(a.Pads)
	if err != nil {
		return nil, nil, err
	}
	win, err := newWindow(x, wt[2], wt[3], s, pd)
	if err != nil {
		return nil, nil, err
	}
	c := &convOp{opBase: opBase{in: ins}, window: win, o: wt[0], k: wt[1] * wt[2] * wt[3], dwBuf: -1, dbBuf: -1, sqBuf: -1}
	c.outPlane = c.o * c.pix
	c.direct = wt[2] == 1 && wt[3] == 1 && s == [2]int{1, 1} && pd == [4]int{}
	if len(ins) > 2 && ins[2] >= 0 {
		if b := p.shape(ins[2]); len(b) != 1 || b[0] != c.o {
			return nil, nil, fmt.Errorf("conv bias has shape %v, want [%d]", b, c.o)
		}
		c.hasBias = true
	} else {
		c.in = ins[:2]
	}
	return c, []int{x[0], c.o, win.ho, win.wo}, nil
}

func (c *convOp) setup(p *plan) {
	cols := c.k * c.pix
	if c.direct {
		cols = 0
	}
	p.needScratch(cols)
	if p.hasGrad(c) {
		if c.need[0] && !c.direct {
			p.needScratch(2 * cols) // columns and their gradient
		}
		parts := p.workers
		if p.kind == kindPerExample {
			parts = p.n
			c.sqBuf = p.newBuf(p.n)
		}
		if c.need[1] {
			c.dwBuf = p.newBuf(parts * c.o * c.k)
		}
		if c.hasBias && c.need[2] {
			c.dbBuf = p.newBuf(parts * c.o)
		}
	}
}

func (c *convOp) inSize() int { return c.window.c * c.inPlane }

func (c *convOp) forward(r *run) {
	x, wt, y := r.data(c.in[0]), r.data(c.in[1]), r.data(c.out)
	var bias []float32
	if c.hasBias {
		bias = r.data(c.in[2])
	}
	n := len(x) / c.inSize()
	parallel(gemmWorkers(r.p.workers), n, 1, func(w, lo, hi int) {
		cols := r.scratch(w)[:c.k*c.pix]
		for i := lo; i < hi; i++ {
			xi := x[i*c.inSize() : (i+1)*c.inSize()]
			yi := y[i*c.outPlane : (i+1)*c.outPlane]
			src := xi
			if !c.direct {
				c.im2col(xi, cols)
				src = cols
			}
			gemm(false, false, c.o, c.pix, c.k, 1, wt, c.k, src, c.pix, 0, yi, c.pix)
			biasRelu(yi, bias, c.pix, c.relu)
		}
	})
}

func (c *convOp) fuseRelu() bool { return true }

func (c *convOp) backward(r *run) {
	x, wt, y, dy := r.data(c.in[0]), r.data(c.in[1]), r.data(c.out), r.grad(c.out)
	var dx, dwAll, dbAll []float32
	if c.need[0] {
		dx = r.grad(c.in[0])
	}
	if c.dwBuf >= 0 {
		dwAll = r.buf(c.dwBuf)
	}
	if c.dbBuf >= 0 {
		dbAll = r.buf(c.dbBuf)
	}
	n := len(x) / c.inSize()
	cs := c.k * c.pix
	// perEx: example i's gradients go to block i of dwAll and dbAll
	// (written, not added), with their squared norm, while still in cache.
	perEx := r.p.kind == kindPerExample
	var sq []float32
	if perEx {
		sq = r.buf(c.sqBuf)
	}
	parts := parallel(gemmWorkers(r.p.workers), n, 1, func(w, lo, hi int) {
		sc := r.scratch(w)
		var dw, db []float32
		if dwAll != nil && !perEx {
			dw = dwAll[w*c.o*c.k : (w+1)*c.o*c.k]
		}
		if dbAll != nil && !perEx {
			db = dbAll[w*c.o : (w+1)*c.o]
		}
		for i := lo; i < hi; i++ {
			first := i == lo
			if perEx {
				first = true
				if dwAll != nil {
					dw = dwAll[i*c.o*c.k : (i+1)*c.o*c.k]
				}
				if dbAll != nil {
					db = dbAll[i*c.o : (i+1)*c.o]
				}
			}
			xi := x[i*c.inSize() : (i+1)*c.inSize()]
			dyi := dy[i*c.outPlane : (i+1)*c.outPlane]
			if c.relu {
				maskRelu(y[i*c.outPlane:(i+1)*c.outPlane], dyi)
			}
			if dw != nil {
				src := xi
				if !c.direct {
					src = sc[:cs]
					c.im2col(xi, src)
				}
				beta := float32(1)
				if first {
					beta = 0
				}
				gemm(false, true, c.o, c.k, c.pix, 1, dyi, c.pix, src, c.pix, beta, dw, c.k)
			}
			if db != nil {
				for oc := range db {
					s := sum(dyi[oc*c.pix : (oc+1)*c.pix])
					if first {
						db[oc] = s
					} else {
						db[oc] += s
					}
				}
			}
			if perEx {
				s := 0.0
				if dw != nil {
					s += sumSquares(dw)
				}
				if db != nil {
					s += sumSquares(db)
				}
				sq[i] = float32(s)
			}
			if dx != nil {
				dxi := dx[i*c.inSize() : (i+1)*c.inSize()]
				if c.direct {
					beta := float32(0)
					if c.acc[0] {
						beta = 1
					}
					gemm(true, false, c.k, c.pix, c.o, 1, wt, c.k, dyi, c.pix, beta, dxi, c.pix)
				} else {
					dcols := sc[cs : 2*cs]
					gemm(true, false, c.k, c.pix, c.o, 1, wt, c.k, dyi, c.pix, 0, dcols, c.pix)
					c.col2im(dcols, dxi, c.acc[0])
				}
			}
		}
	})
	if perEx {
		return
	}
	if dwAll != nil {
		reduceParts(dwAll, parts, c.o*c.k, r.grad(c.in[1]), c.acc[1])
	}
	if dbAll != nil {
		reduceParts(dbAll, parts, c.o, r.grad(c.in[2]), c.acc[2])
	}
}

// reduceParts writes (or adds) the sum of the first parts size-long blocks
// of partial into dst.
func reduceParts(partial []float32, parts, size int, dst []float32, acc bool) {
	dst = dst[:size]
	if !acc {
		copy(dst, partial[:size])
	} else {
		for j, v := range partial[:size] {
			dst[j] += v
		}
	}
	for w := 1; w < parts; w++ {
		for j, v := range partial[w*size : (w+1)*size] {
			dst[j] += v
		}
	}
}

// im2col fills cols [C·kh·kw, Ho·Wo] from one image [C, H, W]: row
// (c, i, j) holds the input pixel under kernel offset (i, j) for every output
// position, zero where the window hangs over the padding.
func (c *convOp) im2col(x, cols []float32) {
	if c.shifted() {
		c.im2colShifted(x, cols)
		return
	}
	for ci := range c.window.c {
		plane := x[ci*c.inPlane : (ci+1)*c.inPlane]
		for ki := range c.kh {
			for kj := range c.kw {
				row := cols[((ci*c.kh+ki)*c.kw+kj)*c.pix:][:c.pix]
				off := kj - c.pl
				lo, hi := span(off, c.sw, c.w, c.wo)
				for oh := range c.ho {
					dst := row[oh*c.wo : (oh+1)*c.wo]
					ih := oh*c.sh + ki - c.pt
					if ih < 0 || ih >= c.h {
						clear(dst)
						continue
					}
					src := plane[ih*c.w : (ih+1)*c.w]
					for j := range lo { // left padding
						dst[j] = 0
					}
					for j := hi; j < len(dst); j++ { // right padding
						dst[j] = 0
					}
					if c.sw == 1 {
						copyShort(dst[lo:hi], src[lo+off:])
					} else {
						iw := lo*c.sw + off
						for ow := lo; ow < hi; ow++ {
							dst[ow] = src[iw]
							iw += c.sw
						}
					}
				}
			}
		}
	}
}

// col2im is im2col's adjoint: it adds every column entry back onto the
// input pixel it came from. Without acc the image is cleared first.
func (c *convOp) col2im(cols, dx []float32, acc bool) {
	if !acc {
		clear(dx)
	}
	if c.shifted() {
		c.col2imShifted(cols, dx)
		return
	}
	for ci := range c.window.c {
		plane := dx[ci*c.inPlane : (ci+1)*c.inPlane]
		for ki := range c.kh {
			for kj := range c.kw {
				row := cols[((ci*c.kh+ki)*c.kw+kj)*c.pix:][:c.pix]
				off := kj - c.pl
				lo, hi := span(off, c.sw, c.w, c.wo)
				if lo >= hi {
					continue
				}
				for oh := range c.ho {
					ih := oh*c.sh + ki - c.pt
					if ih < 0 || ih >= c.h {
						continue
					}
					src := row[oh*c.wo : (oh+1)*c.wo]
					dst := plane[ih*c.w : (ih+1)*c.w]
					if c.sw == 1 {
						addTo(dst[lo+off:lo+off+hi-lo], src[lo:hi])
					} else {
						iw := lo*c.sw + off
						for ow := lo; ow < hi; ow++ {
							dst[iw] += src[ow]
							iw += c.sw
						}
					}
				}
			}
		}
	}
}

// biasRelu adds bias[o] to row o (of length cols) of y, when there is a
// bias, and clamps y at zero when relu is set: the epilogue of a product.
func biasRelu(y, bias []float32, cols int, relu bool) {
	switch {
	case bias != nil:
		for o, b := range bias {
			addBias(y[o*cols:(o+1)*cols], b, relu)
		}
	case relu:
		reluForward(y, y)
	}
}

// shifted reports the common "same" convolution geometry (stride 1, output
// as wide as the input), where each im2col row is the input plane shifted
// by a constant offset: one contiguous copy plus zeroing at the borders,
// instead of a copy per output row.
func (c *convOp) shifted() bool { return c.sh == 1 && c.sw == 1 && c.wo == c.w }

// shift describes im2col row (ki, kj) in the shifted geometry: entry q of
// the row is entry q+delta of the input plane for output rows [rowLo,
// rowHi) (the others read padding), and off is the column offset, whose
// sign says which border columns read padding (and wrapped around in the
// flat copy).
func (c *convOp) shift(ki, kj int) (delta, off, rowLo, rowHi int) {
	dr := ki - c.pt
	off = kj - c.pl
	rowLo, rowHi = span(dr, 1, c.h, c.ho)
	return dr*c.w + off, off, rowLo, rowHi
}

// clearBorder zeroes the entries of an im2col row, in the shifted
// geometry, whose input column lies in the padding for column offset off:
// the first -off or last off positions of every output row.
func (c *convOp) clearBorder(row []float32, off int) {
	switch {
	case off < 0:
		n := min(-off, c.wo)
		for oh := range c.ho {
			for j := oh * c.wo; j < oh*c.wo+n; j++ { // a loop: clear() calls memclr
				row[j] = 0
			}
		}
	case off > 0:
		n := min(off, c.wo)
		for oh := range c.ho {
			for j := (oh+1)*c.wo - n; j < (oh+1)*c.wo; j++ {
				row[j] = 0
			}
		}
	}
}

func (c *convOp) im2colShifted(x, cols []float32) {
	for ci := range c.window.c {
		plane := x[ci*c.inPlane : (ci+1)*c.inPlane]
		for ki := range c.kh {
			for kj := range c.kw {
				row := cols[((ci*c.kh+ki)*c.kw+kj)*c.pix:][:c.pix]
				delta, off, rowLo, rowHi := c.shift(ki, kj)
				lo, hi := max(rowLo*c.wo, -delta), min(rowHi*c.wo, c.inPlane-delta)
				if lo >= hi {
					clear(row)
					continue
				}
				clear(row[:lo])
				copy(row[lo:hi], plane[lo+delta:hi+delta])
				clear(row[hi:])
				c.clearBorder(row, off)
			}
		}
	}
}

// col2imShifted adds each row back as one contiguous range, after zeroing
// the entries that belong to padding (the row is scratch, so it may be
// changed) so that they do not land on the wrapped-around pixels.
func (c *convOp) col2imShifted(cols, dx []float32) {
	for ci := range c.window.c {
		plane := dx[ci*c.inPlane : (ci+1)*c.inPlane]
		for ki := range c.kh {
			for kj := range c.kw {
				row := cols[((ci*c.kh+ki)*c.kw+kj)*c.pix:][:c.pix]
				delta, off, rowLo, rowHi := c.shift(ki, kj)
				lo, hi := max(rowLo*c.wo, -delta), min(rowHi*c.wo, c.inPlane-delta)
				if lo >= hi {
					continue
				}
				c.clearBorder(row, off)
				addTo(plane[lo+delta:hi+delta], row[lo:hi])
			}
		}
	}
}

// poolOp is max or average pooling over NCHW, one plane (image, channel)
// at a time, split across workers.
type poolOp struct {
	opBase
	window
	max      bool
	countPad bool
	planes   int
	// div is, for average pooling, the divisor of each output position: the
	// window size, or without count_include_pad the number of real inputs
	// under the window (as ONNX and PyTorch).
	div []float32
}

// lowest is the smallest float32: padding never wins a max, and a window
// entirely in the padding yields it (as the GoMLX engine).
const lowest = -math.MaxFloat32

func (p *plan) newPool(ins []int, isMax bool, a nn.Attrs) (op, []int, error) {
	if len(a.Kernel) != 2 || a.Kernel[0] < 1 || a.Kernel[1] < 1 {
		return nil, nil, fmt.Errorf("kernel %v: need two positive sizes", a.Kernel)
	}
	kh, kw := a.Kernel[0], a.Kernel[1]
	s := [2]int{kh, kw} // PyTorch's default stride is the kernel
	if len(a.Strides) != 0 {
		var err error
		if s, err = strides2(a.Strides); err != nil {
			return nil, nil, err
		}
	}
	pd, err := pads4(a.Pads)
	if err != nil {
		return nil, nil, err
	}
	x := p.shape(ins[0])
	win, err := newWindow(x, kh, kw, s, pd)
	if err != nil {
		return nil, nil, err
	}
	po := &poolOp{opBase: opBase{in: ins}, window: win, max: isMax, countPad: a.CountIncludePad, planes: x[0] * x[1]}
	if !isMax {
		po.div = make([]float32, win.pix)
		for oh := range win.ho {
			for ow := range win.wo {
				n := kh * kw
				if !po.countPad && pd != [4]int{} {
					h0, w0 := oh*win.sh-win.pt, ow*win.sw-win.pl
					rows := min(h0+kh, win.h) - max(h0, 0)
					cols := min(w0+kw, win.w) - max(w0, 0)
					n = max(rows, 0) * max(cols, 0)
				}
				po.div[oh*win.wo+ow] = float32(n)
			}
		}
	}
	return po, []int{x[0], x[1], win.ho, win.wo}, nil
}

func (*poolOp) setup(*plan) {}

// pair2 reports the common 2x2, stride 2, unpadded pool over even sizes,
// which has a fast path.
func (po *poolOp) pair2() bool {
	return po.kh == 2 && po.kw == 2 && po.sh == 2 && po.sw == 2 && po.pt == 0 && po.pl == 0 &&
		po.h%2 == 0 && po.w%2 == 0 && po.ho == po.h/2 && po.wo == po.w/2
}

func (po *poolOp) forward(r *run) {
	x, y := r.data(po.in[0]), r.data(po.out)
	parallel(r.p.workers, po.planes, 8, func(_, lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			xp := x[pl*po.inPlane : (pl+1)*po.inPlane]
			yp := y[pl*po.pix : (pl+1)*po.pix]
			switch {
			case po.max && po.pair2():
				max2x2(xp, yp, po.w)
			case po.max:
				po.maxPlane(xp, yp)
			default:
				po.avgPlane(xp, yp)
			}
		}
	})
}

func (po *poolOp) maxPlane(x, y []float32) {
	for oh := range po.ho {
		h0 := oh*po.sh - po.pt
		for ow := range po.wo {
			w0 := ow*po.sw - po.pl
			m := float32(lowest)
			for i := max(h0, 0); i < min(h0+po.kh, po.h); i++ {
				for _, v := range x[i*po.w+max(w0, 0) : i*po.w+min(w0+po.kw, po.w)] {
					if v > m {
						m = v
					}
				}
			}
			y[oh*po.wo+ow] = m
		}
	}
}

func (po *poolOp) avgPlane(x, y []float32) {
	for oh := range po.ho {
		h0 := oh*po.sh - po.pt
		for ow := range po.wo {
			w0 := ow*po.sw - po.pl
			s := float32(0)
			for i := max(h0, 0); i < min(h0+po.kh, po.h); i++ {
				for _, v := range x[i*po.w+max(w0, 0) : i*po.w+min(w0+po.kw, po.w)] {
					s += v
				}
			}
			y[oh*po.wo+ow] = s / po.div[oh*po.wo+ow]
		}
	}
}

// backward: max pooling sends each output's gradient to the first input
// that attained the max (recomputed from x, so nothing is stored); average
// pooling spreads it over the window's real inputs.
func (po *poolOp) backward(r *run) {
	x, dy, dx := r.data(po.in[0]), r.grad(po.out), r.grad(po.in[0])
	acc := po.acc[0]
	parallel(r.p.workers, po.planes, 8, func(_, lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			xp := x[pl*po.inPlane : (pl+1)*po.inPlane]
			dxp := dx[pl*po.inPlane : (pl+1)*po.inPlane]
			dyp := dy[pl*po.pix : (pl+1)*po.pix]
			if po.max && po.pair2() && !acc {
				max2x2Backward(xp, dyp, dxp, po.w)
				continue
			}
			if !acc {
				clear(dxp)
			}
			for oh := range po.ho {
				h0 := oh*po.sh - po.pt
				for ow := range po.wo {
					w0 := ow*po.sw - po.pl
					g := dyp[oh*po.wo+ow]
					if po.max {
						best, arg := float32(lowest), -1
						for i := max(h0, 0); i < min(h0+po.kh, po.h); i++ {
							for j := max(w0, 0); j < min(w0+po.kw, po.w); j++ {
								if v := xp[i*po.w+j]; v > best || arg < 0 {
									best, arg = v, i*po.w+j
								}
							}
						}
						if arg >= 0 {
							dxp[arg] += g
						}
						continue
					}
					g /= po.div[oh*po.wo+ow]
					for i := max(h0, 0); i < min(h0+po.kh, po.h); i++ {
						row := dxp[i*po.w+max(w0, 0) : i*po.w+min(w0+po.kw, po.w)]
						for j := range row {
							row[j] += g
						}
					}
				}
			}
		}
	})
}

// globalAvgOp averages each plane: [B, C, H, W] to [B, C, 1, 1].
type globalAvgOp struct {
	opBase
	planes, hw int
}

func (*globalAvgOp) setup(*plan) {}

func (g *globalAvgOp) forward(r *run) {
	x, y := r.data(g.in[0]), r.data(g.out)
	inv := 1 / float32(g.hw)
	for pl := range g.planes {
		s := float32(0)
		for _, v := range x[pl*g.hw : (pl+1)*g.hw] {
			s += v
		}
		y[pl] = s * inv
	}
}

func (g *globalAvgOp) backward(r *run) {
	dy, dx := r.grad(g.out), r.grad(g.in[0])
	inv := 1 / float32(g.hw)
	for pl := range g.planes {
		v := dy[pl] * inv
		row := dx[pl*g.hw : (pl+1)*g.hw]
		if g.acc[0] {
			for j := range row {
				row[j] += v
			}
		} else {
			for j := range row {
				row[j] = v
			}
		}
	}
}
