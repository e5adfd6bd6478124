package onnx

import (
	"slices"

	"github.com/bulwark-sec/bulwark/model/onnx/onnxpb"
	"github.com/bulwark-sec/bulwark/nn"
)

// Tensor operators: each checks its attributes and input shapes, infers the
// output shape and emits an nn node (or folds when every input is constant).

func opUnary(op string) handler {
	return func(c *nodeCtx) error {
		if err := c.onlyOutputs(1); err != nil {
			return err
		}
		x, err := c.need(0)
		if err != nil {
			return err
		}
		return c.emit(op, x.shape, nn.Attrs{}, x)
	}
}

func opBinary(op string) handler {
	return func(c *nodeCtx) error {
		if err := c.onlyOutputs(1); err != nil {
			return err
		}
		if len(c.ins) != 2 {
			return c.errf("has %d inputs, expected 2", len(c.ins))
		}
		a, err := c.need(0)
		if err != nil {
			return err
		}
		b, err := c.need(1)
		if err != nil {
			return err
		}
		shape, err := broadcast(a.shape, b.shape)
		if err == nil {
			err = checkShape(shape)
		}
		if err != nil {
			return c.errf("%v", err)
		}
		if a.c != nil && b.c != nil {
			t, err := c.foldBinary(op, a.c, b.c, shape)
			if err != nil {
				return err
			}
			return c.setConst(t)
		}
		return c.emit(op, shape, nn.Attrs{}, a, b)
	}
}

func opGemm(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	a, err := c.need(0)
	if err != nil {
		return err
	}
	b, err := c.need(1)
	if err != nil {
		return err
	}
	bias := c.in(2)
	alpha, err := c.attrFloat("alpha", 1)
	if err != nil {
		return err
	}
	beta, err := c.attrFloat("beta", 1)
	if err != nil {
		return err
	}
	transA, err := c.flag("transA", 0)
	if err != nil {
		return err
	}
	transB, err := c.flag("transB", 0)
	if err != nil {
		return err
	}
	if len(a.shape) != 2 || len(b.shape) != 2 {
		return c.errf("A %s and B %s must both be 2-D", fmtShape(a.shape), fmtShape(b.shape))
	}
	m, k := a.shape[0], a.shape[1]
	if transA {
		m, k = k, m
	}
	k2, n := b.shape[0], b.shape[1]
	if transB {
		k2, n = n, k2
	}
	if k == batchDim || k2 == batchDim || k != k2 {
		return c.errf("A %s and B %s (transA=%v, transB=%v) do not fit: inner sizes differ", fmtShape(a.shape), fmtShape(b.shape), transA, transB)
	}
	out := []int{m, n}
	if bias != nil {
		s, err := broadcast(bias.shape, out)
		if err != nil || !slices.Equal(s, out) {
			return c.errf("C %s does not broadcast to the output %s", fmtShape(bias.shape), fmtShape(out))
		}
	}
	return c.emit(nn.OpGemm, out, nn.Attrs{Alpha: alpha, Beta: beta, TransA: transA, TransB: transB}, a, b, bias)
}

func opMatMul(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	a, err := c.need(0)
	if err != nil {
		return err
	}
	b, err := c.need(1)
	if err != nil {
		return err
	}
	as, bs := a.shape, b.shape
	if len(as) == 0 || len(bs) == 0 {
		return c.errf("inputs %s and %s must not be scalars", fmtShape(as), fmtShape(bs))
	}
	if len(as) == 1 {
		as = []int{1, as[0]}
	}
	if len(bs) == 1 {
		bs = []int{bs[0], 1}
	}
	k, k2 := as[len(as)-1], bs[len(bs)-2]
	if k == batchDim || k2 == batchDim || k != k2 {
		return c.errf("A %s and B %s do not fit: inner sizes differ", fmtShape(a.shape), fmtShape(b.shape))
	}
	out, err := broadcast(as[:len(as)-2], bs[:len(bs)-2])
	if err != nil {
		return c.errf("%v", err)
	}
	if len(a.shape) > 1 {
		out = append(out, as[len(as)-2])
	}
	if len(b.shape) > 1 {
		out = append(out, bs[len(bs)-1])
	}
	return c.emit(nn.OpMatMul, out, nn.Attrs{}, a, b)
}

// image checks that x is a 4-D NCHW value with fixed C, H, W.
func (c *nodeCtx) image(x *value) error {
	if len(x.shape) != 4 || hasBatch(x.shape[1:]) || slices.Contains(x.shape, 0) {
		return c.errf("input %q has shape %s; a 4-D [N, C, H, W] input is needed (only 2-D convolution and pooling are supported)", x.name, fmtShape(x.shape))
	}
	return nil
}

func (c *nodeCtx) noAutoPad() error {
	s, err := c.attrString("auto_pad", "NOTSET")
	if err != nil {
		return err
	}
	if s != "NOTSET" && s != "" {
		return c.errf("auto_pad %q is not supported (only NOTSET, with explicit pads)", s)
	}
	return nil
}

// spatial computes the output H, W of a convolution or pooling window.
func (c *nodeCtx) spatial(xs, kernel, strides, pads, dil []int) ([]int, error) {
	out := []int{xs[0], 0, 0, 0}
	for k := 0; k < 2; k++ {
		span := dil[k]*(kernel[k]-1) + 1
		full := xs[2+k] + pads[k] + pads[2+k]
		if full < span {
			return nil, c.errf("window %v (dilations %v) does not fit input %s with pads %v", kernel, dil, fmtShape(xs), pads)
		}
		out[2+k] = (full-span)/strides[k] + 1
	}
	return out, nil
}

func addPads(pads []int, d *padding) []int {
	out := slices.Clone(pads)
	for k := range 4 {
		out[k] += d.pads[k]
	}
	return out
}

func opConv(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	x, err := c.need(0)
	if err != nil {
		return err
	}
	w, err := c.need(1)
	if err != nil {
		return err
	}
	bias := c.in(2)
	var extra *padding
	if x.pad != nil {
		extra, x = x.pad, x.pad.src
	}
	if err := c.image(x); err != nil {
		return err
	}
	if err := c.noAutoPad(); err != nil {
		return err
	}
	ws := w.shape
	if len(ws) != 4 || hasBatch(ws) || slices.Contains(ws, 0) {
		return c.errf("weight %q has shape %s; [out, in/group, kh, kw] is needed", w.name, fmtShape(ws))
	}
	group, err := c.attrInt("group", 1)
	if err != nil {
		return err
	}
	if group < 1 || group > int64(ws[0]) || int64(ws[0])%group != 0 {
		return c.errf("group %d does not divide the %d output channels", group, ws[0])
	}
	if int64(x.shape[1]) != int64(ws[1])*group {
		return c.errf("input %q has %d channels, weight %q %s with group %d expects %d", x.name, x.shape[1], w.name, fmtShape(ws), group, int64(ws[1])*group)
	}
	kernel := ws[2:]
	if ks, err := c.smallInts("kernel_shape", 2, 1, nil); err != nil {
		return err
	} else if ks != nil && !slices.Equal(ks, kernel) {
		return c.errf("kernel_shape %v does not match weight %q %s", ks, w.name, fmtShape(ws))
	}
	strides, err := c.smallInts("strides", 2, 1, []int{1, 1})
	if err != nil {
		return err
	}
	dil, err := c.smallInts("dilations", 2, 1, []int{1, 1})
	if err != nil {
		return err
	}
	pads, err := c.smallInts("pads", 4, 0, []int{0, 0, 0, 0})
	if err != nil {
		return err
	}
	if extra != nil {
		pads = addPads(pads, extra)
	}
	if bias != nil && !slices.Equal(bias.shape, ws[:1]) {
		return c.errf("bias %q has shape %s, expected [%d]", bias.name, fmtShape(bias.shape), ws[0])
	}
	out, err := c.spatial(x.shape, kernel, strides, pads, dil)
	if err != nil {
		return err
	}
	out[1] = ws[0]
	attrs := nn.Attrs{Kernel: slices.Clone(kernel), Strides: strides, Pads: pads, Dilations: dil, Group: int(group)}
	return c.emit(nn.OpConv, out, attrs, x, w, bias)
}

// pool reads the attributes MaxPool and AveragePool share.
func (c *nodeCtx) pool(x *value) (kernel, strides, pads []int, err error) {
	if err = c.image(x); err != nil {
		return
	}
	if err = c.noAutoPad(); err != nil {
		return
	}
	if kernel, err = c.smallInts("kernel_shape", 2, 1, nil); err != nil {
		return
	}
	if kernel == nil {
		return nil, nil, nil, c.errf("attribute kernel_shape is missing")
	}
	if strides, err = c.smallInts("strides", 2, 1, []int{1, 1}); err != nil {
		return
	}
	if pads, err = c.smallInts("pads", 4, 0, []int{0, 0, 0, 0}); err != nil {
		return
	}
	ceil, err := c.attrInt("ceil_mode", 0)
	if err != nil {
		return nil, nil, nil, err
	}
	if ceil != 0 {
		return nil, nil, nil, c.errf("ceil_mode %d is not supported (only 0)", ceil)
	}
	dil, err := c.smallInts("dilations", 2, 1, []int{1, 1})
	if err != nil {
		return nil, nil, nil, err
	}
	if dil[0] != 1 || dil[1] != 1 {
		return nil, nil, nil, c.errf("dilations %v are not supported (only 1)", dil)
	}
	return kernel, strides, pads, nil
}

// windowsSeeInput requires pads smaller than the kernel, so that no window
// lies entirely in the padding.
func (c *nodeCtx) windowsSeeInput(kernel, pads []int) error {
	for k := range 4 {
		if pads[k] >= kernel[k%2] {
			return c.errf("pads %v must be smaller than kernel %v", pads, kernel)
		}
	}
	return nil
}

func opMaxPool(c *nodeCtx) error {
	x, err := c.need(0)
	if err != nil {
		return err
	}
	kernel, strides, pads, err := c.pool(x)
	if err != nil {
		return err
	}
	if so, err := c.attrInt("storage_order", 0); err != nil {
		return err
	} else if so != 0 {
		return c.errf("storage_order %d is not supported (only 0)", so)
	}
	if err := c.windowsSeeInput(kernel, pads); err != nil {
		return err
	}
	out, err := c.spatial(x.shape, kernel, strides, pads, []int{1, 1})
	if err != nil {
		return err
	}
	out[1] = x.shape[1]
	if err := c.emit(nn.OpMaxPool, out, nn.Attrs{Kernel: kernel, Strides: strides, Pads: pads}, x); err != nil {
		return err
	}
	return c.extraOutputs(1, "Indices")
}

func opAveragePool(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	x, err := c.need(0)
	if err != nil {
		return err
	}
	var extra *padding
	if x.pad != nil {
		extra, x = x.pad, x.pad.src
	}
	kernel, strides, pads, err := c.pool(x)
	if err != nil {
		return err
	}
	include, err := c.flag("count_include_pad", 0)
	if err != nil {
		return err
	}
	if extra != nil && !extra.zero() {
		// Zeros added by a Pad are real elements of the window: merging is
		// exact when they are counted, which also covers the node's own pads
		// only if it counts them too.
		if !include && slices.ContainsFunc(pads, func(v int) bool { return v != 0 }) {
			return c.errf("cannot merge the preceding Pad: the node has its own pads with count_include_pad=0")
		}
		pads, include = addPads(pads, extra), true
	}
	if !include {
		if err := c.windowsSeeInput(kernel, pads); err != nil {
			return err
		}
	}
	out, err := c.spatial(x.shape, kernel, strides, pads, []int{1, 1})
	if err != nil {
		return err
	}
	out[1] = x.shape[1]
	return c.emit(nn.OpAvgPool, out, nn.Attrs{Kernel: kernel, Strides: strides, Pads: pads, CountIncludePad: include}, x)
}

func opGlobalAveragePool(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	x, err := c.need(0)
	if err != nil {
		return err
	}
	if err := c.image(x); err != nil {
		return err
	}
	return c.emit(nn.OpGlobalAvgPool, []int{x.shape[0], x.shape[1], 1, 1}, nn.Attrs{}, x)
}

func opBatchNorm(c *nodeCtx) error {
	x, err := c.need(0)
	if err != nil {
		return err
	}
	if len(x.shape) < 2 || hasBatch(x.shape[1:]) {
		return c.errf("input %q has shape %s; [N, C, ...] is needed", x.name, fmtShape(x.shape))
	}
	ch := x.shape[1]
	ins := []*value{x}
	for k, what := range []string{"scale", "bias", "mean", "var"} {
		v, err := c.need(k + 1)
		if err != nil {
			return err
		}
		if !slices.Equal(v.shape, []int{ch}) {
			return c.errf("%s %q has shape %s, expected [%d]", what, v.name, fmtShape(v.shape), ch)
		}
		ins = append(ins, v)
	}
	eps, err := c.attrFloat("epsilon", 1e-5)
	if err != nil {
		return err
	}
	if !(eps >= 0) {
		return c.errf("epsilon %v must not be negative", eps)
	}
	mom, err := c.attrFloat("momentum", 0.9)
	if err != nil {
		return err
	}
	if train, err := c.attrInt("training_mode", 0); err != nil {
		return err
	} else if train != 0 {
		return c.errf("training_mode=%d is not supported (export the model in eval mode)", train)
	}
	if spatial, err := c.attrInt("spatial", 1); err != nil {
		return err
	} else if spatial != 1 {
		return c.errf("spatial=%d is not supported", spatial)
	}
	if err := c.emit(nn.OpBatchNorm, x.shape, nn.Attrs{Epsilon: eps, Momentum: mom}, ins...); err != nil {
		return err
	}
	return c.extraOutputs(1, "training statistics")
}

func opSoftmax(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	x, err := c.need(0)
	if err != nil {
		return err
	}
	def := int64(-1)
	if c.p.opset < 13 {
		def = 1
	}
	a, err := c.attrInt("axis", def)
	if err != nil {
		return err
	}
	r := len(x.shape)
	if r == 0 {
		return c.errf("input %q is a scalar", x.name)
	}
	axis, err := c.axis(a, r, 0, "axis")
	if err != nil {
		return err
	}
	if c.p.opset < 13 && axis != r-1 {
		// Before opset 13 Softmax normalised over all axes from axis on.
		return c.errf("axis %d of a rank-%d input: opset %d semantics (softmax over the flattened trailing axes) are only supported for the last axis", a, r, c.p.opset)
	}
	if x.shape[axis] == batchDim {
		return c.errf("softmax over the batch axis is not supported")
	}
	return c.emit(nn.OpSoftmax, x.shape, nn.Attrs{Axis: axis}, x)
}

// flatShape is the 2-D shape Flatten makes of s at axis.
func flatShape(s []int, axis int) ([]int, bool) {
	out := make([]int, 2)
	for k, part := range [][]int{s[:axis], s[axis:]} {
		n, b := fixedProduct(part)
		switch {
		case b == 0:
			out[k] = n
		case n == 1:
			out[k] = batchDim
		default:
			return nil, false
		}
	}
	return out, true
}

func opFlatten(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	x, err := c.need(0)
	if err != nil {
		return err
	}
	a, err := c.attrInt("axis", 1)
	if err != nil {
		return err
	}
	axis, err := c.axis(a, len(x.shape), 1, "axis")
	if err != nil {
		return err
	}
	out, ok := flatShape(x.shape, axis)
	if !ok {
		return c.errf("flattening %s at axis %d mixes the batch axis with other axes", fmtShape(x.shape), axis)
	}
	if x.c != nil {
		return c.setConst(&tensor{shape: out, isInt: x.c.isInt, f: x.c.f, i: x.c.i})
	}
	return c.emit(nn.OpFlatten, out, nn.Attrs{Axis: axis}, x)
}

func opTranspose(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	x, err := c.need(0)
	if err != nil {
		return err
	}
	r := len(x.shape)
	p64, err := c.attrInts("perm")
	if err != nil {
		return err
	}
	perm := make([]int, r)
	if p64 == nil {
		for k := range perm {
			perm[k] = r - 1 - k
		}
	} else {
		if len(p64) != r {
			return c.errf("perm %v does not fit rank %d", p64, r)
		}
		seen := make([]bool, r)
		for k, v := range p64 {
			if v < 0 || v >= int64(r) || seen[v] {
				return c.errf("perm %v is not a permutation of 0..%d", p64, r-1)
			}
			seen[v] = true
			perm[k] = int(v)
		}
	}
	out := make([]int, r)
	for k, p := range perm {
		out[k] = x.shape[p]
	}
	if x.c != nil {
		t, err := c.foldTranspose(x.c, perm, out)
		if err != nil {
			return err
		}
		return c.setConst(t)
	}
	return c.emit(nn.OpTranspose, out, nn.Attrs{Perm: perm}, x)
}

// identity passes input 0 through: folded for constants, an identity node otherwise.
func (c *nodeCtx) identity(x *value) error {
	if x.c != nil {
		return c.setConst(x.c)
	}
	return c.emit(nn.OpIdentity, x.shape, nn.Attrs{}, x)
}

func opIdentity(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	x, err := c.need(0)
	if err != nil {
		return err
	}
	return c.identity(x)
}

func opDropout(c *nodeCtx) error {
	x, err := c.need(0)
	if err != nil {
		return err
	}
	if c.in(1) != nil && c.in(1).dyn {
		return c.errf("ratio must not depend on the input")
	}
	if tm := c.in(2); tm != nil {
		if tm.c == nil {
			return c.errf("training_mode (input %q) must be a constant false", tm.name)
		}
		v, err := tm.c.ints()
		if err != nil {
			return c.errf("training_mode: %v", err)
		}
		for _, b := range v {
			if b != 0 {
				return c.errf("training_mode is true; only inference Dropout is supported")
			}
		}
	}
	if err := c.identity(x); err != nil {
		return err
	}
	return c.extraOutputs(1, "mask")
}

func opCast(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	x, err := c.need(0)
	if err != nil {
		return err
	}
	to, err := c.attrInt("to", 0)
	if err != nil {
		return err
	}
	dt := int32(to)
	if int64(dt) != to || elemSize(dt) == 0 {
		return c.errf("cast to type %d is not supported", to)
	}
	if x.c == nil {
		if !isFloatType(dt) {
			return c.errf("cast of a run-time value to %s is not supported", dtypeName(dt))
		}
		return c.emit(nn.OpIdentity, x.shape, nn.Attrs{}, x)
	}
	if isFloatType(dt) {
		f, err := x.c.floats()
		if err != nil {
			return c.errf("%v", err)
		}
		return c.setConst(&tensor{shape: x.c.shape, f: f})
	}
	v, err := x.c.ints()
	if err != nil {
		return c.errf("%v", err)
	}
	if dt == dtBool {
		if err := c.alloc(len(v)); err != nil {
			return err
		}
		b := make([]int64, len(v))
		for k, x := range v {
			if x == batchMark {
				return c.errf("cannot cast the batch size to bool")
			}
			if x != 0 {
				b[k] = 1
			}
		}
		v = b
	}
	return c.setConst(&tensor{shape: x.c.shape, isInt: true, i: v})
}

func opConstant(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	if len(c.attrs) != 1 {
		return c.errf("needs exactly one value attribute, has %d attributes", len(c.attrs))
	}
	var t *tensor
	for name, a := range c.attrs {
		switch name {
		case "value":
			if _, err := c.attr(name, onnxpb.AttributeProto_TENSOR); err != nil {
				return err
			}
			if a.GetT() == nil {
				return c.errf("attribute value holds no tensor")
			}
			var err error
			if t, err = c.p.decodeTensor(a.GetT(), c.outName(0)); err != nil {
				return c.errf("%v", err)
			}
		case "value_float":
			v, err := c.attrFloat(name, 0)
			if err != nil {
				return err
			}
			t = &tensor{shape: []int{}, f: []float32{v}}
		case "value_floats":
			if _, err := c.attr(name, onnxpb.AttributeProto_FLOATS); err != nil {
				return err
			}
			f := append([]float32{}, a.GetFloats()...)
			t = &tensor{shape: []int{len(f)}, f: f}
		case "value_int":
			v, err := c.attrInt(name, 0)
			if err != nil {
				return err
			}
			if v == batchMark {
				return c.errf("value_int out of range")
			}
			t = &tensor{shape: []int{}, isInt: true, i: []int64{v}}
		case "value_ints":
			v, err := c.attrInts(name)
			if err != nil {
				return err
			}
			v = slices.Clone(v)
			if slices.Contains(v, batchMark) {
				return c.errf("value_ints out of range")
			}
			t = &tensor{shape: []int{len(v)}, isInt: true, i: v}
		default:
			return c.errf("attribute %q is not supported", name)
		}
	}
	return c.setConst(t)
}

func opPad(c *nodeCtx) error {
	if err := c.onlyOutputs(1); err != nil {
		return err
	}
	x, err := c.need(0)
	if err != nil {
		return err
	}
	mode, err := c.attrString("mode", "constant")
	if err != nil {
		return err
	}
	if mode != "constant" {
		return c.errf("mode %q is not supported (only constant zero padding)", mode)
	}
	var pads []int64
	var fill float32
	if c.p.opset < 11 {
		if pads, err = c.attrInts("pads"); err != nil {
			return err
		}
		if fill, err = c.attrFloat("value", 0); err != nil {
			return err
		}
	} else {
		t, err := c.constInput(1, "pads")
		if err != nil {
			return err
		}
		if pads, err = c.intVector(t, "pads"); err != nil {
			return err
		}
		if v := c.in(2); v != nil {
			if v.c == nil || v.c.numel() != 1 {
				return c.errf("constant_value must be a constant scalar")
			}
			f, err := v.c.floats()
			if err != nil {
				return c.errf("constant_value: %v", err)
			}
			fill = f[0]
		}
	}
	if fill != 0 {
		return c.errf("padding with %v is not supported (only zeros)", fill)
	}
	if x.c != nil {
		return c.errf("padding a constant is not supported")
	}
	r := len(x.shape)
	full := make([]int64, 2*r)
	if a := c.in(3); a != nil { // axes, opset 18
		t, err := c.constInput(3, "axes")
		if err != nil {
			return err
		}
		axes, err := c.intVector(t, "axes")
		if err != nil {
			return err
		}
		if len(pads) != 2*len(axes) {
			return c.errf("pads %v do not fit axes %v", pads, axes)
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
			full[ax], full[r+ax] = pads[k], pads[len(axes)+k]
		}
	} else {
		if len(pads) != 2*r {
			return c.errf("pads %v do not fit input %q of rank %d", pads, x.name, r)
		}
		copy(full, pads)
	}
	if r != 4 || full[0] != 0 || full[1] != 0 || full[4] != 0 || full[5] != 0 {
		return c.errf("only zero padding of the H and W axes of a 4-D input is supported (pads %v)", full)
	}
	if err := c.image(x); err != nil {
		return err
	}
	d := &padding{src: x}
	shape := slices.Clone(x.shape)
	for k, at := range []int64{full[2], full[3], full[6], full[7]} {
		if at < 0 || at > maxAttrValue {
			return c.errf("pads %v are out of range (negative pads are not supported)", full)
		}
		d.pads[k] = int(at)
		shape[2+k%2] += int(at)
	}
	if err := checkShape(shape); err != nil {
		return c.errf("%v", err)
	}
	if err := c.p.define(&value{name: c.outName(0), shape: shape, dyn: x.dyn, pad: d}); err != nil {
		return c.errf("%v", err)
	}
	return nil
}
