package engine

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive

	"github.com/bulwark-sec/bulwark/nn"
)

// conv is a 2-D convolution as im2col plus one matrix product, in NHWC.
//
// GoMLX's own ConvGeneral on the go backend is a direct loop that took ~80%
// of a CNN's time (engine-evaluation.md); a [B·Ho·Wo, kh·kw·C] × [kh·kw·C, O]
// product runs on the backend's SIMD matmul kernel instead. Its gradient is
// GoMLX's autodiff of slices, stack and the product.
func (b *builder) conv(nd *nn.Node) value {
	a := nd.Attrs
	x := nhwcOf(b.in(nd, 0))
	w := b.in(nd, 1).n // [O, C, kh, kw]
	if w.Rank() != 4 {
		panic(fmt.Errorf("conv weight must be [out, in, kh, kw], got %s", w.Shape()))
	}
	if a.Group > 1 {
		panic(fmt.Errorf("grouped convolution (group=%d) is not supported", a.Group))
	}
	for _, d := range a.Dilations {
		if d != 1 {
			panic(fmt.Errorf("dilated convolution (dilations=%v) is not supported", a.Dilations))
		}
	}
	bsz, c := x.Shape().Dim(0), x.Shape().Dim(3)
	o, wc, kh, kw := w.Shape().Dim(0), w.Shape().Dim(1), w.Shape().Dim(2), w.Shape().Dim(3)
	if wc != c {
		panic(fmt.Errorf("input has %d channels but the weight expects %d", c, wc))
	}
	cols, ho, wo := im2col(x, kh, kw, strides2(a.Strides), pads4(a.Pads)) // [B, Ho*Wo, kh*kw*C]
	// Weight to [kh*kw*C, O] in the same (i, j, c) order as the columns.
	wm := Reshape(TransposeAllAxes(w, 2, 3, 1, 0), kh*kw*c, o)
	y := DotGeneral(Reshape(cols, bsz*ho*wo, kh*kw*c), []int{1}, nil, wm, []int{0}, nil) // [B*Ho*Wo, O]
	biasIdx := -1
	if b.hasIn(nd, 2) {
		biasIdx = b.paramIdx[nd.Inputs[2]]
	}
	if b.taps != nil {
		if wi, ok := b.paramIdx[nd.Inputs[1]]; ok {
			b.taps[wi] = &tap{cols: cols, pre: y, p: ho * wo, biasIdx: biasIdx, conv: true, kshape: []int{o, c, kh, kw}}
		}
	}
	if b.hasIn(nd, 2) {
		y = Add(y, ExpandAxes(b.in(nd, 2).n, 0))
	}
	return value{n: Reshape(y, bsz, ho, wo, o), nhwc: true}
}

func strides2(s []int) [2]int {
	if len(s) == 0 {
		return [2]int{1, 1}
	}
	if len(s) != 2 || s[0] < 1 || s[1] < 1 {
		panic(fmt.Errorf("strides %v: need two positive values", s))
	}
	return [2]int{s[0], s[1]}
}

func pads4(p []int) [4]int {
	if len(p) == 0 {
		return [4]int{}
	}
	if len(p) != 4 {
		panic(fmt.Errorf("pads %v: need [top, left, bottom, right]", p))
	}
	for _, v := range p {
		if v < 0 {
			panic(fmt.Errorf("pads %v: negative padding", p))
		}
	}
	return [4]int{p[0], p[1], p[2], p[3]}
}

// padNHWC pads the spatial axes of an NHWC tensor with fill. It concatenates
// constant blocks rather than calling Pad because Pad has no gradient on
// GoMLX's go backend, while Concatenate does.
func padNHWC(x *Node, p [4]int, fill float64) *Node {
	if p == [4]int{} {
		return x
	}
	block := func(dims ...int) *Node {
		return BroadcastToDims(Scalar(x.Graph(), x.DType(), fill), dims...)
	}
	d := x.Shape().Dimensions
	b, h, w, c := d[0], d[1], d[2], d[3]
	if p[1] > 0 || p[3] > 0 {
		parts := []*Node{}
		if p[1] > 0 {
			parts = append(parts, block(b, h, p[1], c))
		}
		parts = append(parts, x)
		if p[3] > 0 {
			parts = append(parts, block(b, h, p[3], c))
		}
		x = Concatenate(parts, 2)
		w += p[1] + p[3]
	}
	if p[0] > 0 || p[2] > 0 {
		parts := []*Node{}
		if p[0] > 0 {
			parts = append(parts, block(b, p[0], w, c))
		}
		parts = append(parts, x)
		if p[2] > 0 {
			parts = append(parts, block(b, p[2], w, c))
		}
		x = Concatenate(parts, 1)
	}
	return x
}

// windows returns the kh*kw strided views [B, Ho, Wo, C] of a padded NHWC
// tensor, one per kernel offset, in (i, j) order.
func windows(x *Node, kh, kw int, s [2]int) (views []*Node, ho, wo int) {
	h, w := x.Shape().Dim(1), x.Shape().Dim(2)
	if h < kh || w < kw {
		panic(fmt.Errorf("kernel %dx%d is larger than the (padded) input %dx%d", kh, kw, h, w))
	}
	ho, wo = (h-kh)/s[0]+1, (w-kw)/s[1]+1
	for i := 0; i < kh; i++ {
		for j := 0; j < kw; j++ {
			views = append(views, Slice(x, AxisRange(),
				AxisRange(i, i+s[0]*(ho-1)+1).Stride(s[0]),
				AxisRange(j, j+s[1]*(wo-1)+1).Stride(s[1]),
				AxisRange()))
		}
	}
	return views, ho, wo
}

// im2col gathers every kh x kw patch: [B, Ho*Wo, kh*kw*C].
func im2col(x *Node, kh, kw int, s [2]int, p [4]int) (*Node, int, int) {
	x = padNHWC(x, p, 0)
	bsz, c := x.Shape().Dim(0), x.Shape().Dim(3)
	if kh == 1 && kw == 1 && s == [2]int{1, 1} {
		return Reshape(x, bsz, x.Shape().Dim(1)*x.Shape().Dim(2), c), x.Shape().Dim(1), x.Shape().Dim(2)
	}
	views, ho, wo := windows(x, kh, kw, s)
	cols := Stack(views, 3) // [B, Ho, Wo, kh*kw, C]
	return Reshape(cols, bsz, ho*wo, kh*kw*c), ho, wo
}

func kernel2(k []int) (int, int) {
	if len(k) != 2 || k[0] < 1 || k[1] < 1 {
		panic(fmt.Errorf("kernel %v: need two positive sizes", k))
	}
	return k[0], k[1]
}

// tiles reports whether a pool is a plain tiling (kernel == stride, no
// padding, sizes divisible), which a reshape and one reduction computes.
func tiles(x *Node, kh, kw int, s [2]int, p [4]int) bool {
	return p == [4]int{} && s == [2]int{kh, kw} && x.Shape().Dim(1)%kh == 0 && x.Shape().Dim(2)%kw == 0
}

// maxPool over NHWC. The go backend has no gradient for its max-pool
// (SelectAndScatterMax), so this is a chain of elementwise Max over the
// window's strided views, whose gradient exists.
func maxPool(x *Node, kernel, strides, pads []int) *Node {
	kh, kw := kernel2(kernel)
	s, p := poolStrides(strides, kh, kw), pads4(pads)
	// No ReduceMax fast path: its gradient goes to every input that ties for
	// the maximum (common on flat image backgrounds), where PyTorch and the
	// blas engine give it to one. A chain of Max keeps one winner.
	views, _, _ := windows(padNHWC(x, p, negInf), kh, kw, s)
	out := views[0]
	for _, v := range views[1:] {
		out = Max(out, v)
	}
	return out
}

const negInf = -3.4028234663852886e38 // lowest float32: padding never wins a max

// poolStrides defaults the stride to the kernel size, as PyTorch does (ONNX
// defaults to 1, but the importer always fills strides in).
func poolStrides(s []int, kh, kw int) [2]int {
	if len(s) == 0 {
		return [2]int{kh, kw}
	}
	return strides2(s)
}

// avgPool over NHWC. Without count_include_pad the divisor at the border is
// the number of real (unpadded) inputs under the window, as in ONNX/PyTorch.
func avgPool(x *Node, kernel, strides, pads []int, countPad bool) *Node {
	kh, kw := kernel2(kernel)
	s, p := poolStrides(strides, kh, kw), pads4(pads)
	if tiles(x, kh, kw, s, p) {
		bsz, h, w, c := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), x.Shape().Dim(3)
		return ReduceMean(Reshape(x, bsz, h/kh, kh, w/kw, kw, c), 2, 4)
	}
	views, ho, wo := windows(padNHWC(x, p, 0), kh, kw, s)
	sum := views[0]
	for _, v := range views[1:] {
		sum = Add(sum, v)
	}
	if countPad || p == [4]int{} {
		return DivScalar(sum, float64(kh*kw))
	}
	// Count the real inputs under each window.
	h, w := x.Shape().Dim(1), x.Shape().Dim(2)
	counts := make([]float32, ho*wo)
	for oi := 0; oi < ho; oi++ {
		for oj := 0; oj < wo; oj++ {
			n := 0
			for i := 0; i < kh; i++ {
				for j := 0; j < kw; j++ {
					r, c := oi*s[0]+i-p[0], oj*s[1]+j-p[1]
					if r >= 0 && r < h && c >= 0 && c < w {
						n++
					}
				}
			}
			counts[oi*wo+oj] = float32(n)
		}
	}
	cnt := Reshape(Const(x.Graph(), counts), 1, ho, wo, 1)
	return Div(sum, BroadcastToDims(cnt, sum.Shape().Dimensions...))
}
