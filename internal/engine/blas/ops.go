package blas

import (
	"fmt"
	"math"
	"slices"

	"github.com/bulwark-sec/bulwark/nn"
)

// buildNode checks a node's inputs and returns its op and output shape.
func (p *plan) buildNode(nd *nn.Node) (op, []int, error) {
	ins := make([]int, len(nd.Inputs))
	for i, name := range nd.Inputs {
		ins[i] = -1
		if name == "" {
			continue
		}
		v, ok := p.byName[name]
		if !ok {
			return nil, nil, fmt.Errorf("input %q is not defined", name)
		}
		ins[i] = v
	}
	// need checks that inputs 0..count-1 are present.
	need := func(count int) error {
		for i := range count {
			if i >= len(ins) || ins[i] < 0 {
				return fmt.Errorf("missing input %d", i)
			}
		}
		return nil
	}
	a := nd.Attrs
	switch nd.Op {
	case nn.OpConv:
		if err := need(2); err != nil {
			return nil, nil, err
		}
		return p.newConv(ins, a)
	case nn.OpDense:
		if err := need(2); err != nil {
			return nil, nil, err
		}
		return p.newDense(ins)
	case nn.OpGemm:
		if err := need(2); err != nil {
			return nil, nil, err
		}
		return p.newGemm(ins, a)
	case nn.OpMatMul:
		if err := need(2); err != nil {
			return nil, nil, err
		}
		return p.newMatMul(ins)
	case nn.OpAdd, nn.OpSub, nn.OpMul, nn.OpDiv:
		if err := need(2); err != nil {
			return nil, nil, err
		}
		return p.newBinary(nd.Op, ins[:2])
	}
	if err := need(1); err != nil {
		return nil, nil, err
	}
	x := p.shape(ins[0])
	switch nd.Op {
	case nn.OpRelu, nn.OpSigmoid, nn.OpTanh:
		return &unaryOp{opBase: opBase{in: ins[:1]}, fn: nd.Op}, slices.Clone(x), nil
	case nn.OpIdentity:
		return &aliasOp{opBase{in: ins[:1], alias: true}}, slices.Clone(x), nil
	case nn.OpFlatten:
		axis, err := adjustAxis(a.Axis, len(x))
		if err != nil {
			return nil, nil, err
		}
		return &aliasOp{opBase{in: ins[:1], alias: true}}, []int{nn.Numel(x[:axis]), nn.Numel(x[axis:])}, nil
	case nn.OpReshape:
		shape, err := reshapeDims(x, a.Shape)
		if err != nil {
			return nil, nil, err
		}
		return &aliasOp{opBase{in: ins[:1], alias: true}}, shape, nil
	case nn.OpTranspose:
		return newTranspose(ins[:1], x, a.Perm)
	case nn.OpSoftmax:
		axis, err := adjustAxis(a.Axis, len(x))
		if err != nil {
			return nil, nil, err
		}
		return &softmaxOp{opBase: opBase{in: ins[:1]}, outer: nn.Numel(x[:axis]), dim: x[axis], inner: nn.Numel(x[axis+1:])}, slices.Clone(x), nil
	case nn.OpMaxPool, nn.OpAvgPool:
		return p.newPool(ins[:1], nd.Op == nn.OpMaxPool, a)
	case nn.OpGlobalAvgPool:
		if len(x) != 4 {
			return nil, nil, fmt.Errorf("expected a 4-D (NCHW) tensor, got shape %v", x)
		}
		return &globalAvgOp{opBase: opBase{in: ins[:1]}, planes: x[0] * x[1], hw: x[2] * x[3]}, []int{x[0], x[1], 1, 1}, nil
	case nn.OpBatchNorm:
		if err := need(5); err != nil {
			return nil, nil, err
		}
		return p.newBatchNorm(ins[:5], a)
	}
	return nil, nil, fmt.Errorf("unsupported op %q", nd.Op)
}

// adjustAxis resolves a negative axis and checks the range.
func adjustAxis(axis, rank int) (int, error) {
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return 0, fmt.Errorf("axis out of range for rank %d", rank)
	}
	return axis, nil
}

// reshapeDims applies ONNX Reshape rules to the full shape (batch axis
// included): 0 keeps the input's dimension at that position, -1 takes what
// is left.
func reshapeDims(in, spec []int) ([]int, error) {
	out := slices.Clone(spec)
	infer, known := -1, 1
	for i, d := range out {
		switch {
		case d == 0:
			if i >= len(in) {
				return nil, fmt.Errorf("reshape %v: 0 at axis %d but the input has rank %d", spec, i, len(in))
			}
			out[i] = in[i]
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("reshape %v: more than one -1", spec)
			}
			infer = i
			continue
		case d < 0:
			return nil, fmt.Errorf("reshape %v: negative dimension", spec)
		}
		known *= out[i]
	}
	total := nn.Numel(in)
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("reshape %v: cannot infer -1 from %d elements", spec, total)
		}
		out[infer] = total / known
	} else if known != total {
		return nil, fmt.Errorf("reshape %v of input %v: element counts differ", spec, in)
	}
	return out, nil
}

// aliasOp is identity, flatten and reshape: the output is the input's
// buffer with another shape, and its gradient is the input's gradient
// buffer, so neither direction does any work.
type aliasOp struct{ opBase }

func (*aliasOp) setup(*plan)     {}
func (*aliasOp) forward(*run)    {}
func (*aliasOp) backward(r *run) {}

// elementwiseGrain is the smallest number of elements worth a goroutine.
const elementwiseGrain = 1 << 14

// unaryOp is relu, sigmoid or tanh. Each one's derivative is a function of
// its output, so backward reads only y and dy.
type unaryOp struct {
	opBase
	fn string
}

func (*unaryOp) setup(*plan) {}

func (u *unaryOp) forward(r *run) {
	x, y := r.data(u.in[0]), r.data(u.out)
	parallel(r.p.workers, len(y), elementwiseGrain, func(_, lo, hi int) {
		xs, ys := x[lo:hi], y[lo:hi]
		switch u.fn {
		case nn.OpRelu:
			reluForward(xs, ys)
		case nn.OpSigmoid:
			for i, v := range xs {
				ys[i] = float32(1 / (1 + math.Exp(-float64(v))))
			}
		case nn.OpTanh:
			for i, v := range xs {
				ys[i] = float32(math.Tanh(float64(v)))
			}
		}
	})
}

func (u *unaryOp) backward(r *run) {
	y, dy, dx := r.data(u.out), r.grad(u.out), r.grad(u.in[0])
	acc := u.acc[0]
	parallel(r.p.workers, len(y), elementwiseGrain, func(_, lo, hi int) {
		ys, dys, dxs := y[lo:hi], dy[lo:hi], dx[lo:hi]
		switch u.fn {
		case nn.OpRelu:
			reluBackward(ys, dys, dxs, acc)
		case nn.OpSigmoid:
			for i, v := range ys {
				g := dys[i] * v * (1 - v)
				if acc {
					g += dxs[i]
				}
				dxs[i] = g
			}
		case nn.OpTanh:
			for i, v := range ys {
				g := dys[i] * (1 - v*v)
				if acc {
					g += dxs[i]
				}
				dxs[i] = g
			}
		}
	})
}

// softmaxOp normalises over one axis: the input is viewed as
// [outer, dim, inner] and each of the outer·inner fibres of length dim sums
// to one.
type softmaxOp struct {
	opBase
	outer, dim, inner int
}

func (*softmaxOp) setup(*plan) {}

func (s *softmaxOp) forward(r *run) {
	x, y := r.data(s.in[0]), r.data(s.out)
	parallel(r.p.workers, s.outer, 1, func(_, lo, hi int) {
		for o := lo; o < hi; o++ {
			for in := range s.inner {
				base := o*s.dim*s.inner + in
				m := float32(math.Inf(-1))
				for d := range s.dim {
					m = max(m, x[base+d*s.inner])
				}
				sum := 0.0
				for d := range s.dim {
					e := math.Exp(float64(x[base+d*s.inner] - m))
					y[base+d*s.inner] = float32(e)
					sum += e
				}
				inv := float32(1 / sum)
				for d := range s.dim {
					y[base+d*s.inner] *= inv
				}
			}
		}
	})
}

// backward: dx = y·(dy - Σ dy·y) along the axis.
func (s *softmaxOp) backward(r *run) {
	y, dy, dx := r.data(s.out), r.grad(s.out), r.grad(s.in[0])
	acc := s.acc[0]
	parallel(r.p.workers, s.outer, 1, func(_, lo, hi int) {
		for o := lo; o < hi; o++ {
			for in := range s.inner {
				base := o*s.dim*s.inner + in
				dot := float32(0)
				for d := range s.dim {
					i := base + d*s.inner
					dot += dy[i] * y[i]
				}
				for d := range s.dim {
					i := base + d*s.inner
					g := y[i] * (dy[i] - dot)
					if acc {
						g += dx[i]
					}
					dx[i] = g
				}
			}
		}
	})
}

// transposeOp permutes axes: out axis i is input axis perm[i].
type transposeOp struct {
	opBase
	inShape, perm []int
}

func newTranspose(ins, x, perm []int) (op, []int, error) {
	if len(perm) == 0 { // ONNX default: reverse the axes
		for i := len(x) - 1; i >= 0; i-- {
			perm = append(perm, i)
		}
	}
	if len(perm) != len(x) {
		return nil, nil, fmt.Errorf("perm %v for an input of rank %d", perm, len(x))
	}
	seen := make([]bool, len(x))
	out := make([]int, len(x))
	for i, a := range perm {
		if a < 0 || a >= len(x) || seen[a] {
			return nil, nil, fmt.Errorf("perm %v is not a permutation of the %d axes", perm, len(x))
		}
		seen[a] = true
		out[i] = x[a]
	}
	return &transposeOp{opBase: opBase{in: ins}, inShape: slices.Clone(x), perm: slices.Clone(perm)}, out, nil
}

func (*transposeOp) setup(*plan) {}

func (t *transposeOp) forward(r *run) {
	permute(r.data(t.in[0]), t.inShape, t.perm, r.data(t.out), false)
}

// backward permutes the gradient back with the inverse permutation.
func (t *transposeOp) backward(r *run) {
	inv := make([]int, len(t.perm))
	outShape := make([]int, len(t.perm))
	for i, a := range t.perm {
		inv[a] = i
		outShape[i] = t.inShape[a]
	}
	permute(r.grad(t.out), outShape, inv, r.grad(t.in[0]), t.acc[0])
}

// permute writes (or adds) src, of shape shape, into dst with its axes
// reordered: dst axis i is src axis perm[i]. It walks dst in order with an
// odometer over the source strides.
func permute(src []float32, shape, perm []int, dst []float32, acc bool) {
	rank := len(shape)
	if rank == 0 {
		if acc {
			dst[0] += src[0]
		} else {
			dst[0] = src[0]
		}
		return
	}
	srcStride := make([]int, rank)
	s := 1
	for i := rank - 1; i >= 0; i-- {
		srcStride[i] = s
		s *= shape[i]
	}
	dims := make([]int, rank)
	strides := make([]int, rank) // source stride of each destination axis
	for i, a := range perm {
		dims[i], strides[i] = shape[a], srcStride[a]
	}
	idx := make([]int, rank)
	inner, innerStride := dims[rank-1], strides[rank-1]
	off := 0
	for o := 0; o < len(dst); o += inner {
		row := dst[o : o+inner]
		j := off
		if acc {
			for i := range row {
				row[i] += src[j]
				j += innerStride
			}
		} else {
			for i := range row {
				row[i] = src[j]
				j += innerStride
			}
		}
		// Advance the odometer over the outer axes.
		for ax := rank - 2; ax >= 0; ax-- {
			idx[ax]++
			off += strides[ax]
			if idx[ax] < dims[ax] {
				break
			}
			off -= strides[ax] * dims[ax]
			idx[ax] = 0
		}
	}
}
