package blas

import (
	"fmt"

	"github.com/bulwark-sec/bulwark/nn"
)

// bcast is numpy broadcasting of two operands, reduced to as few axes as
// possible: axes of size 1 are dropped and neighbours that step through
// both operands the same way are merged. [B,C,H,W] against [C,1,1] becomes
// three axes (B, C, H·W) with strides (0, 1, 0) for the small operand, so
// the innermost loop runs over H·W with that operand fixed.
type bcast struct {
	dims   []int // merged output axes
	sa, sb []int // strides of each operand along them; 0 where it broadcasts
	total  int
	sizeA  int
	sizeB  int
}

// newBcast broadcasts shapes a and b and returns the output shape.
func newBcast(a, b []int) (*bcast, []int, error) {
	r := max(len(a), len(b))
	pa, pb := padLeft(a, r), padLeft(b, r)
	out := make([]int, r)
	for i := range r {
		switch da, db := pa[i], pb[i]; {
		case da == db, db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	stA, stB := contiguousStrides(pa), contiguousStrides(pb)
	bc := &bcast{total: nn.Numel(out), sizeA: nn.Numel(a), sizeB: nn.Numel(b)}
	for i, d := range out {
		if d == 1 {
			continue
		}
		sa, sb := stA[i], stB[i]
		if pa[i] == 1 {
			sa = 0
		}
		if pb[i] == 1 {
			sb = 0
		}
		if j := len(bc.dims) - 1; j >= 0 && bc.sa[j] == sa*d && bc.sb[j] == sb*d {
			bc.dims[j] *= d
			bc.sa[j], bc.sb[j] = sa, sb
			continue
		}
		bc.dims = append(bc.dims, d)
		bc.sa = append(bc.sa, sa)
		bc.sb = append(bc.sb, sb)
	}
	if len(bc.dims) == 0 { // everything has size 1
		bc.dims, bc.sa, bc.sb = []int{1}, []int{0}, []int{0}
	}
	return bc, out, nil
}

func padLeft(s []int, r int) []int {
	out := make([]int, r)
	for i := range out {
		out[i] = 1
	}
	copy(out[r-len(s):], s)
	return out
}

func contiguousStrides(s []int) []int {
	st := make([]int, len(s))
	x := 1
	for i := len(s) - 1; i >= 0; i-- {
		st[i] = x
		x *= s[i]
	}
	return st
}

// inner is the length of the innermost axis; outer the number of its runs.
func (bc *bcast) inner() int { return bc.dims[len(bc.dims)-1] }
func (bc *bcast) outer() int { return bc.total / bc.inner() }

// runs calls fn for the outer positions [lo, hi): the output offset, the
// two operands' offsets, the run length and the operands' inner strides.
func (bc *bcast) runs(lo, hi int, fn func(off, offA, offB, n, sa, sb int)) {
	r := len(bc.dims) - 1
	inner, ia, ib := bc.dims[r], bc.sa[r], bc.sb[r]
	var idxBuf [8]int
	idx := idxBuf[:0]
	if r > len(idxBuf) {
		idx = make([]int, r)
	} else {
		idx = idxBuf[:r]
	}
	offA, offB, rem := 0, 0, lo
	for ax := r - 1; ax >= 0; ax-- {
		idx[ax] = rem % bc.dims[ax]
		rem /= bc.dims[ax]
		offA += idx[ax] * bc.sa[ax]
		offB += idx[ax] * bc.sb[ax]
	}
	for o := lo; o < hi; o++ {
		fn(o*inner, offA, offB, inner, ia, ib)
		for ax := r - 1; ax >= 0; ax-- {
			idx[ax]++
			offA += bc.sa[ax]
			offB += bc.sb[ax]
			if idx[ax] < bc.dims[ax] {
				break
			}
			offA -= bc.sa[ax] * bc.dims[ax]
			offB -= bc.sb[ax] * bc.dims[ax]
			idx[ax] = 0
		}
	}
}

// binaryOp is add, sub, mul or div with numpy broadcasting.
type binaryOp struct {
	opBase
	fn string
	bc *bcast
}

func (p *plan) newBinary(fn string, ins []int) (op, []int, error) {
	bc, out, err := newBcast(p.shape(ins[0]), p.shape(ins[1]))
	if err != nil {
		return nil, nil, err
	}
	return &binaryOp{opBase: opBase{in: ins}, fn: fn, bc: bc}, out, nil
}

func (*binaryOp) setup(*plan) {}

// grain converts elementwiseGrain to runs of the innermost axis.
func (bo *binaryOp) grain() int { return max(1, elementwiseGrain/bo.bc.inner()) }

func (bo *binaryOp) forward(r *run) {
	a, b, y := r.data(bo.in[0]), r.data(bo.in[1]), r.data(bo.out)
	parallel(r.p.workers, bo.bc.outer(), bo.grain(), func(_, lo, hi int) {
		bo.bc.runs(lo, hi, func(off, ia, ib, n, sa, sb int) {
			ys := y[off : off+n]
			switch bo.fn {
			case nn.OpAdd:
				if sa == 1 && sb == 1 {
					as, bs := a[ia:ia+n], b[ib:ib+n]
					for i := range ys {
						ys[i] = as[i] + bs[i]
					}
					return
				}
				for i := range ys {
					ys[i] = a[ia] + b[ib]
					ia += sa
					ib += sb
				}
			case nn.OpSub:
				for i := range ys {
					ys[i] = a[ia] - b[ib]
					ia += sa
					ib += sb
				}
			case nn.OpMul:
				for i := range ys {
					ys[i] = a[ia] * b[ib]
					ia += sa
					ib += sb
				}
			case nn.OpDiv:
				for i := range ys {
					ys[i] = a[ia] / b[ib]
					ia += sa
					ib += sb
				}
			}
		})
	})
}

// backward: with y = a∘b, da = dy·∂y/∂a summed over the axes a was
// broadcast along, and the same for b. An operand as large as the output
// gets its gradient written in parallel; a broadcast one accumulates
// serially (it is small: a bias, a scale, a scalar).
func (bo *binaryOp) backward(r *run) {
	a, b, dy := r.data(bo.in[0]), r.data(bo.in[1]), r.grad(bo.out)
	for side := range 2 {
		if !bo.need[side] {
			continue
		}
		g := r.grad(bo.in[side])
		acc := bo.acc[side]
		full := (side == 0 && bo.bc.sizeA == bo.bc.total) || (side == 1 && bo.bc.sizeB == bo.bc.total)
		if full && (bo.fn == nn.OpAdd || bo.fn == nn.OpSub) {
			// The operand has the output's layout: its gradient is ±dy.
			sign := float32(1)
			if bo.fn == nn.OpSub && side == 1 {
				sign = -1
			}
			parallel(r.p.workers, len(dy), elementwiseGrain, func(_, lo, hi int) {
				scaleInto(g[lo:hi], dy[lo:hi], sign, acc)
			})
			continue
		}
		// term returns ∂y/∂operand at one element.
		term := bo.partial(side)
		body := func(off, ia, ib, n, sa, sb int) {
			for _, d := range dy[off : off+n] {
				v := d * term(a[ia], b[ib])
				j := ia
				if side == 1 {
					j = ib
				}
				if full && !acc {
					g[j] = v
				} else {
					g[j] += v
				}
				ia += sa
				ib += sb
			}
		}
		if full {
			parallel(r.p.workers, bo.bc.outer(), bo.grain(), func(_, lo, hi int) { bo.bc.runs(lo, hi, body) })
			continue
		}
		if !acc {
			clear(g)
		}
		bo.bc.runs(0, bo.bc.outer(), body)
	}
}

func (bo *binaryOp) partial(side int) func(a, b float32) float32 {
	switch bo.fn {
	case nn.OpAdd:
		return func(_, _ float32) float32 { return 1 }
	case nn.OpSub:
		if side == 0 {
			return func(_, _ float32) float32 { return 1 }
		}
		return func(_, _ float32) float32 { return -1 }
	case nn.OpMul:
		if side == 0 {
			return func(_, b float32) float32 { return b }
		}
		return func(a, _ float32) float32 { return a }
	default: // div
		if side == 0 {
			return func(_, b float32) float32 { return 1 / b }
		}
		return func(a, b float32) float32 { return -a / (b * b) }
	}
}

// scaleInto is dst = s·src, or dst += s·src with acc.
func scaleInto(dst, src []float32, s float32, acc bool) {
	src = src[:len(dst)]
	switch {
	case !acc && s == 1:
		copy(dst, src)
	case !acc:
		for i, v := range src {
			dst[i] = s * v
		}
	default:
		for i, v := range src {
			dst[i] += s * v
		}
	}
}
