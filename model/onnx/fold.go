package onnx

import (
	"slices"
	"strconv"
	"strings"

	"github.com/bulwark-sec/bulwark/model/onnx/onnxpb"
	"github.com/bulwark-sec/bulwark/nn"
)

// Shape arithmetic folded at import time. PyTorch writes x.view(x.size(0), -1)
// as Shape -> Gather -> Unsqueeze -> Concat -> Reshape; Shape of a value with
// a known shape becomes a constant whose batch entry is batchMark, the other
// operators here fold over such constants, and Reshape turns batchMark into
// 0 ("copy the input's dimension").

// strides returns row-major strides of shape.
func strides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for k := len(shape) - 1; k >= 0; k-- {
		st[k] = s
		s *= shape[k]
	}
	return st
}

// gather builds a tensor of shape out whose element e is src element idx(e).
func (c *nodeCtx) gather(src *tensor, out []int, idx func(e int) int) (*tensor, error) {
	n := nn.Numel(out)
	if err := c.alloc(n); err != nil {
		return nil, err
	}
	t := &tensor{shape: out, isInt: src.isInt}
	if src.isInt {
		t.i = make([]int64, n)
		for e := range n {
			t.i[e] = src.i[idx(e)]
		}
	} else {
		t.f = make([]float32, n)
		for e := range n {
			t.f[e] = src.f[idx(e)]
		}
	}
	return t, nil
}

// broadcastIndex maps an element of shape out to the element of shape in
// that numpy broadcasting reads.
func broadcastIndex(out, in []int) func(e int) int {
	ost := strides(out)
	ist := make([]int, len(out))
	s := 1
	for k := len(in) - 1; k >= 0; k-- {
		if in[k] != 1 {
			ist[k+len(out)-len(in)] = s
		}
		s *= in[k]
	}
	return func(e int) int {
		off := 0
		for k := range out {
			off += (e / ost[k] % out[k]) * ist[k]
		}
		return off
	}
}

func (c *nodeCtx) foldBinary(op string, a, b *tensor, out []int) (*tensor, error) {
	if a.isInt != b.isInt {
		return nil, c.errf("inputs have different element types")
	}
	n := nn.Numel(out)
	if err := c.alloc(n); err != nil {
		return nil, err
	}
	ia, ib := broadcastIndex(out, a.shape), broadcastIndex(out, b.shape)
	t := &tensor{shape: out, isInt: a.isInt}
	if !a.isInt {
		t.f = make([]float32, n)
		for e := range n {
			x, y := a.f[ia(e)], b.f[ib(e)]
			switch op {
			case nn.OpAdd:
				t.f[e] = x + y
			case nn.OpSub:
				t.f[e] = x - y
			case nn.OpMul:
				t.f[e] = x * y
			case nn.OpDiv:
				t.f[e] = x / y
			}
		}
		return t, nil
	}
	t.i = make([]int64, n)
	for e := range n {
		x, y := a.i[ia(e)], b.i[ib(e)]
		if x == batchMark || y == batchMark {
			return nil, c.errf("arithmetic on the run-time batch size is not supported")
		}
		var r int64
		switch op {
		case nn.OpAdd:
			r = x + y
		case nn.OpSub:
			r = x - y
		case nn.OpMul:
			r = x * y
		case nn.OpDiv:
			if y == 0 {
				return nil, c.errf("integer division by zero")
			}
			r = x / y
		}
		if r == batchMark {
			return nil, c.errf("integer overflow")
		}
		t.i[e] = r
	}
	return t, nil
}

func (c *nodeCtx) foldTranspose(x *tensor, perm, out []int) (*tensor, error) {
	ist := strides(x.shape)
	ost := strides(out)
	return c.gather(x, out, func(e int) int {
		off := 0
		for k := range out {
			off += (e / ost[k] % out[k]) * ist[perm[k]]
		}
		return off
	})
}

func opShape(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	x, err := c.need(0)
	if err != nil {
		return err
	}
	r := int64(len(x.shape))
	clamp := func(v int64) int64 {
		if v < 0 {
			v += r
		}
		return min(max(v, 0), r)
	}
	start, err := c.attrInt("start", 0)
	if err != nil {
		return err
	}
	end, err := c.attrInt("end", r)
	if err != nil {
		return err
	}
	start, end = clamp(start), clamp(end)
	v := []int64{}
	for k := start; k < end; k++ {
		if d := x.shape[k]; d == batchDim {
			v = append(v, batchMark)
		} else {
			v = append(v, int64(d))
		}
	}
	return c.setConst(&tensor{shape: []int{len(v)}, isInt: true, i: v})
}

func opGather(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	data, err := c.constInput(0, "data")
	if err != nil {
		return err
	}
	it, err := c.constInput(1, "indices")
	if err != nil {
		return err
	}
	idx, err := it.ints()
	if err != nil {
		return c.errf("indices: %v", err)
	}
	a, err := c.attrInt("axis", 0)
	if err != nil {
		return err
	}
	r := len(data.shape)
	if r == 0 {
		return c.errf("data is a scalar")
	}
	axis, err := c.axis(a, r, 0, "axis")
	if err != nil {
		return err
	}
	d := data.shape[axis]
	norm := make([]int, len(idx))
	for k, v := range idx {
		if v < -int64(d) || v >= int64(d) {
			return c.errf("index %d is out of range for axis %d of size %d", v, axis, d)
		}
		if v < 0 {
			v += int64(d)
		}
		norm[k] = int(v)
	}
	out := slices.Concat(data.shape[:axis], it.shape, data.shape[axis+1:])
	if err := checkShape(out); err != nil {
		return c.errf("%v", err)
	}
	inner := nn.Numel(data.shape[axis+1:])
	ni := len(norm)
	t, err := c.gather(data, out, func(e int) int {
		in := e % inner
		j := e / inner % ni
		outer := e / inner / ni
		return (outer*d+norm[j])*inner + in
	})
	if err != nil {
		return err
	}
	return c.setConst(t)
}

// axesInput reads the axes of Squeeze/Unsqueeze: an input from opset 13, an
// attribute before. nil when absent.
func (c *nodeCtx) axesInput() ([]int64, error) {
	if c.p.opset < 13 {
		return c.attrInts("axes")
	}
	if c.in(1) == nil {
		return nil, nil
	}
	t, err := c.constInput(1, "axes")
	if err != nil {
		return nil, err
	}
	return c.intVector(t, "axes")
}

// reshaped defines output 0 as x with a new shape: folded for constants,
// an nn reshape otherwise.
func (c *nodeCtx) reshaped(x *value, out []int) error {
	if err := checkShape(out); err != nil {
		return c.errf("%v", err)
	}
	if x.c != nil {
		return c.setConst(&tensor{shape: out, isInt: x.c.isInt, f: x.c.f, i: x.c.i})
	}
	attr, err := reshapeAttr(x.shape, out)
	if err != nil {
		return c.errf("%v", err)
	}
	return c.emit(nn.OpReshape, out, nn.Attrs{Shape: attr}, x)
}

func opUnsqueeze(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	x, err := c.need(0)
	if err != nil {
		return err
	}
	axes, err := c.axesInput()
	if err != nil {
		return err
	}
	if axes == nil {
		return c.errf("axes are missing")
	}
	r := len(x.shape) + len(axes)
	if r > maxRank {
		return c.errf("rank %d is above the limit of %d", r, maxRank)
	}
	ins := make([]bool, r)
	for _, a := range axes {
		ax, err := c.axis(a, r, 0, "axis")
		if err != nil {
			return err
		}
		if ins[ax] {
			return c.errf("axis %d repeated", a)
		}
		ins[ax] = true
	}
	out := make([]int, 0, r)
	k := 0
	for _, one := range ins {
		if one {
			out = append(out, 1)
		} else {
			out = append(out, x.shape[k])
			k++
		}
	}
	return c.reshaped(x, out)
}

func opSqueeze(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	x, err := c.need(0)
	if err != nil {
		return err
	}
	axes, err := c.axesInput()
	if err != nil {
		return err
	}
	r := len(x.shape)
	drop := make([]bool, r)
	if axes == nil {
		for k, d := range x.shape {
			drop[k] = d == 1
		}
	}
	for _, a := range axes {
		ax, err := c.axis(a, r, 0, "axis")
		if err != nil {
			return err
		}
		if x.shape[ax] != 1 {
			return c.errf("axis %d of %s is not of size 1", a, fmtShape(x.shape))
		}
		drop[ax] = true
	}
	var out []int
	for k, d := range x.shape {
		if !drop[k] {
			out = append(out, d)
		}
	}
	if out == nil {
		out = []int{}
	}
	return c.reshaped(x, out)
}

func opConcat(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	if len(c.ins) == 0 {
		return c.errf("has no inputs")
	}
	var ts []*tensor
	for k := range c.ins {
		t, err := c.constInput(k, "every input")
		if err != nil {
			return c.errf("only concatenation of constant shape vectors is supported (%v)", err)
		}
		ts = append(ts, t)
	}
	a, err := c.attrInt("axis", 0)
	if err != nil {
		return err
	}
	if _, ok := c.attrs["axis"]; !ok && c.p.opset >= 4 {
		return c.errf("attribute axis is missing")
	}
	r := len(ts[0].shape)
	if r == 0 {
		return c.errf("cannot concatenate scalars")
	}
	axis, err := c.axis(a, r, 0, "axis")
	if err != nil {
		return err
	}
	out := slices.Clone(ts[0].shape)
	out[axis] = 0
	for _, t := range ts {
		if len(t.shape) != r || t.isInt != ts[0].isInt {
			return c.errf("inputs differ in rank or element type")
		}
		for k := range r {
			if k != axis && t.shape[k] != out[k] {
				return c.errf("input shapes %v and %v differ outside axis %d", ts[0].shape, t.shape, axis)
			}
		}
		out[axis] += t.shape[axis]
		if out[axis] > maxDim {
			return c.errf("result is too large")
		}
	}
	if err := checkShape(out); err != nil {
		return c.errf("%v", err)
	}
	// which input and offset along the axis each output index comes from
	if err := c.alloc(2 * out[axis]); err != nil {
		return err
	}
	src := make([]int, out[axis])
	pos := make([]int, out[axis])
	j := 0
	for k, t := range ts {
		for q := range t.shape[axis] {
			src[j], pos[j] = k, q
			j++
		}
	}
	inner := nn.Numel(out[axis+1:])
	n := nn.Numel(out)
	if err := c.alloc(n); err != nil {
		return err
	}
	res := &tensor{shape: out, isInt: ts[0].isInt}
	if res.isInt {
		res.i = make([]int64, n)
	} else {
		res.f = make([]float32, n)
	}
	for e := range n {
		in := e % inner
		ax := e / inner % out[axis]
		outer := e / inner / out[axis]
		t := ts[src[ax]]
		off := (outer*t.shape[axis]+pos[ax])*inner + in
		if res.isInt {
			res.i[e] = t.i[off]
		} else {
			res.f[e] = t.f[off]
		}
	}
	return c.setConst(res)
}

func opSlice(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	data, err := c.constInput(0, "data")
	if err != nil {
		return c.errf("only slicing of constant shape vectors is supported (%v)", err)
	}
	var starts, ends, axes, steps []int64
	if c.p.opset < 10 {
		if starts, err = c.attrInts("starts"); err != nil {
			return err
		}
		if ends, err = c.attrInts("ends"); err != nil {
			return err
		}
		if axes, err = c.attrInts("axes"); err != nil {
			return err
		}
	} else {
		vec := func(k int, what string) ([]int64, error) {
			if c.in(k) == nil {
				return nil, nil
			}
			t, err := c.constInput(k, what)
			if err != nil {
				return nil, err
			}
			return c.intVector(t, what)
		}
		if starts, err = vec(1, "starts"); err != nil {
			return err
		}
		if ends, err = vec(2, "ends"); err != nil {
			return err
		}
		if axes, err = vec(3, "axes"); err != nil {
			return err
		}
		if steps, err = vec(4, "steps"); err != nil {
			return err
		}
	}
	r := len(data.shape)
	if starts == nil || ends == nil || len(starts) != len(ends) {
		return c.errf("starts and ends are missing or differ in length")
	}
	if axes == nil {
		if len(starts) > r {
			return c.errf("more starts than axes")
		}
		axes = make([]int64, len(starts))
		for k := range axes {
			axes[k] = int64(k)
		}
	}
	if steps == nil {
		steps = make([]int64, len(starts))
		for k := range steps {
			steps[k] = 1
		}
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		return c.errf("starts, ends, axes and steps differ in length")
	}
	first := make([]int, r)
	step := make([]int, r)
	out := slices.Clone(data.shape)
	for k := range step {
		step[k] = 1
	}
	seen := make([]bool, r)
	for k, a := range axes {
		ax, err := c.axis(a, r, 0, "axis")
		if err != nil {
			return err
		}
		if seen[ax] {
			return c.errf("axis %d repeated", a)
		}
		seen[ax] = true
		d := int64(data.shape[ax])
		s, e, st := starts[k], ends[k], steps[k]
		if st == 0 || st == batchMark {
			return c.errf("step %d is not allowed", st)
		}
		if s < 0 {
			s += d
		}
		if e < 0 {
			e += d
		}
		var count int64
		if st > 0 {
			s, e = min(max(s, 0), d), min(max(e, 0), d)
			if e > s {
				count = (e-s-1)/st + 1
			}
		} else {
			s, e = min(max(s, -1), d-1), min(max(e, -1), d-1)
			if s > e {
				count = (s-e-1)/(-st) + 1
			}
		}
		first[ax], step[ax], out[ax] = int(s), int(st), int(count)
	}
	ist := strides(data.shape)
	ost := strides(out)
	t, err := c.gather(data, out, func(e int) int {
		off := 0
		for k := range out {
			off += (first[k] + (e/ost[k]%out[k])*step[k]) * ist[k]
		}
		return off
	})
	if err != nil {
		return err
	}
	return c.setConst(t)
}

func opConstantOfShape(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	st, err := c.constInput(0, "shape")
	if err != nil {
		return err
	}
	dims, err := c.intVector(st, "shape")
	if err != nil {
		return err
	}
	fill := &tensor{shape: []int{1}, f: []float32{0}}
	if a, err := c.attr("value", onnxpb.AttributeProto_TENSOR); err != nil {
		return err
	} else if a != nil {
		if fill, err = c.p.decodeTensor(a.GetT(), c.outName(0)); err != nil {
			return c.errf("%v", err)
		}
		if fill.numel() != 1 {
			return c.errf("value must hold one element")
		}
	}
	n, err := checkedNumel(dims, maxNumel)
	if err != nil {
		return c.errf("shape: %v", err)
	}
	if err := c.alloc(int(min(n, maxNumel))); err != nil {
		return err
	}
	shape := make([]int, len(dims))
	for k, d := range dims {
		shape[k] = int(d)
	}
	t := &tensor{shape: shape, isInt: fill.isInt}
	if t.isInt {
		t.i = make([]int64, n)
		for k := range t.i {
			t.i[k] = fill.i[0]
		}
	} else {
		t.f = make([]float32, n)
		for k := range t.f {
			t.f[k] = fill.f[0]
		}
	}
	return c.setConst(t)
}

// reshapeTarget resolves a Reshape target against the input shape in. The
// batch size (batchMark) may only appear first, where the input's batch axis
// is; it becomes 0 in the nn attribute.
func reshapeTarget(in []int, target []int64) (out, attr []int, ok bool, why string) {
	if len(target) > maxRank {
		return nil, nil, false, "the target has too many axes"
	}
	out = make([]int, len(target))
	attr = make([]int, len(target))
	neg := -1
	for k, t := range target {
		switch {
		case t == batchMark:
			if k != 0 || len(in) == 0 || in[0] != batchDim {
				return nil, nil, false, "the run-time batch size appears in the target other than as its first entry, for the input's batch axis"
			}
			out[k], attr[k] = batchDim, 0
		case t == 0:
			if k >= len(in) {
				return nil, nil, false, "a 0 (copy) entry has no matching input axis"
			}
			out[k], attr[k] = in[k], 0
		case t == -1:
			if neg >= 0 {
				return nil, nil, false, "the target has more than one -1"
			}
			neg, attr[k] = k, -1
		case t < -1 || t > maxDim:
			return nil, nil, false, "the target has an invalid entry"
		default:
			out[k], attr[k] = int(t), int(t)
		}
	}
	inP, inB := fixedProduct(in)
	outP, outB := int64(1), 0
	for k, d := range out {
		switch {
		case k == neg:
		case d == batchDim:
			outB++
		default:
			if d != 0 && outP > maxNumel/int64(d) {
				return nil, nil, false, "the target has too many elements"
			}
			outP *= int64(d)
		}
	}
	switch {
	case neg >= 0 && outP == 0:
		return nil, nil, false, "-1 cannot be inferred next to a zero-sized axis"
	case neg >= 0 && inB == outB:
		if int64(inP)%outP != 0 {
			return nil, nil, false, "the sizes do not divide"
		}
		out[neg] = int(int64(inP) / outP)
	case neg >= 0 && inB == 1 && outB == 0:
		if int64(inP) != outP {
			return nil, nil, false, "the batch axis would be mixed with other axes"
		}
		out[neg] = batchDim
	case neg >= 0:
		return nil, nil, false, "the batch axis does not fit"
	case inB != outB || int64(inP) != outP:
		return nil, nil, false, "the number of elements differs"
	}
	return out, attr, true, ""
}

func opReshape(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	x, err := c.need(0)
	if err != nil {
		return err
	}
	st, err := c.constInput(1, "shape")
	if err != nil {
		return err
	}
	if len(st.shape) != 1 {
		return c.errf("shape must be a 1-D tensor, has shape %v", st.shape)
	}
	target, err := st.ints()
	if err != nil {
		return c.errf("shape: %v", err)
	}
	if az, err := c.attrInt("allowzero", 0); err != nil {
		return err
	} else if az != 0 {
		return c.errf("allowzero=%d is not supported", az)
	}
	out, attr, ok, why := reshapeTarget(x.shape, target)
	if !ok && c.p.declBatch > 0 && len(target) > 0 && target[0] == int64(c.p.declBatch) &&
		len(x.shape) > 0 && x.shape[0] == batchDim {
		// Exported with a fixed batch size, the exporter folded x.size(0)
		// into that number: read it as the batch size.
		t := slices.Clone(target)
		t[0] = batchMark
		if o, a, ok2, _ := reshapeTarget(x.shape, t); ok2 {
			out, attr, ok = o, a, true
		}
	}
	if !ok {
		return c.errf("cannot reshape %s to %v: %s", fmtShape(x.shape), fmtTarget(target), why)
	}
	if err := checkShape(out); err != nil {
		return c.errf("%v", err)
	}
	if x.c != nil {
		return c.setConst(&tensor{shape: out, isInt: x.c.isInt, f: x.c.f, i: x.c.i})
	}
	return c.emit(nn.OpReshape, out, nn.Attrs{Shape: attr}, x)
}

// fmtTarget prints a Reshape target with the batch size as "N".
func fmtTarget(t []int64) string {
	parts := make([]string, len(t))
	for k, v := range t {
		if v == batchMark {
			parts[k] = "N"
		} else {
			parts[k] = strconv.FormatInt(v, 10)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}
