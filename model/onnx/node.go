package onnx

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bulwark-sec/bulwark/model/onnx/onnxpb"
	"github.com/bulwark-sec/bulwark/nn"
)

// nodeCtx is one ONNX node being imported.
type nodeCtx struct {
	p     *parser
	n     *onnxpb.NodeProto
	name  string // node name for errors and nn.Node.Name
	op    string
	ins   []*value // nil for an input left out ("")
	attrs map[string]*onnxpb.AttributeProto
}

type handler func(c *nodeCtx) error

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"Add": opBinary(nn.OpAdd), "Sub": opBinary(nn.OpSub),
		"Mul": opBinary(nn.OpMul), "Div": opBinary(nn.OpDiv),
		"AveragePool":        opAveragePool,
		"BatchNormalization": opBatchNorm,
		"Cast":               opCast,
		"Concat":             opConcat,
		"Constant":           opConstant,
		"ConstantOfShape":    opConstantOfShape,
		"Conv":               opConv,
		"Dropout":            opDropout,
		"Flatten":            opFlatten,
		"Gather":             opGather,
		"Gemm":               opGemm,
		"GlobalAveragePool":  opGlobalAveragePool,
		"Identity":           opIdentity,
		"MatMul":             opMatMul,
		"MaxPool":            opMaxPool,
		"Pad":                opPad,
		"Relu":               opUnary(nn.OpRelu),
		"Reshape":            opReshape,
		"Shape":              opShape,
		"Sigmoid":            opUnary(nn.OpSigmoid),
		"Slice":              opSlice,
		"Softmax":            opSoftmax,
		"Squeeze":            opSqueeze,
		"Tanh":               opUnary(nn.OpTanh),
		"Transpose":          opTranspose,
		"Unsqueeze":          opUnsqueeze,
	}
}

// Supported lists the ONNX operators the importer accepts, sorted. Shape,
// Gather, Unsqueeze, Squeeze, Concat, Slice, Cast, ConstantOfShape and Pad are
// folded at import time (Pad into the following Conv or AveragePool) and do
// not appear in the graph.
func Supported() []string {
	ops := make([]string, 0, len(handlers))
	for k := range handlers {
		ops = append(ops, k)
	}
	slices.Sort(ops)
	return ops
}

// node imports the i-th ONNX node.
func (p *parser) node(i int, n *onnxpb.NodeProto) error {
	c := &nodeCtx{p: p, n: n, name: n.GetName(), op: n.GetOpType()}
	if c.name == "" {
		c.name = fmt.Sprintf("op_%d", i)
	}
	h := handlers[c.op]
	if d := n.GetDomain(); d != "" && d != "ai.onnx" {
		h = nil
		c.op = d + "." + c.op
	}
	if h == nil {
		return fmt.Errorf("unsupported ONNX operator %q in node %q (supported: %s)", c.op, c.name, strings.Join(Supported(), ", "))
	}
	c.attrs = make(map[string]*onnxpb.AttributeProto, len(n.GetAttribute()))
	for _, a := range n.GetAttribute() {
		if _, dup := c.attrs[a.GetName()]; dup {
			return c.errf("attribute %q is given twice", a.GetName())
		}
		if a.GetRefAttrName() != "" {
			return c.errf("attribute %q refers to a function attribute, which is not supported", a.GetName())
		}
		c.attrs[a.GetName()] = a
	}
	if len(n.GetOutput()) == 0 {
		return c.errf("node has no outputs")
	}
	c.ins = make([]*value, len(n.GetInput()))
	for k, s := range n.GetInput() {
		if s == "" {
			continue
		}
		v := p.vals[s]
		if v == nil {
			return c.errf("input %q is not defined before the node (nodes must be in topological order)", s)
		}
		if v.unusable != "" {
			return c.errf("input %q is %s", s, v.unusable)
		}
		if v.pad != nil && !(k == 0 && (c.op == "Conv" || c.op == "AveragePool" || c.op == "Shape")) {
			if !v.pad.zero() {
				return c.errf("input %q comes from a Pad, which is only supported right before Conv or AveragePool", s)
			}
			v = v.pad.src // zero padding is a no-op
		}
		c.ins[k] = v
	}
	return h(c)
}

func (c *nodeCtx) errf(format string, args ...any) error {
	return fmt.Errorf("node %q (%s): %s", c.name, c.op, fmt.Sprintf(format, args...))
}

// in returns input k, or nil when it is absent.
func (c *nodeCtx) in(k int) *value {
	if k < len(c.ins) {
		return c.ins[k]
	}
	return nil
}

// need returns input k, failing when it is absent.
func (c *nodeCtx) need(k int) (*value, error) {
	v := c.in(k)
	if v == nil {
		return nil, c.errf("input %d is missing", k)
	}
	return v, nil
}

// constInput returns input k, which must be a constant.
func (c *nodeCtx) constInput(k int, what string) (*tensor, error) {
	v, err := c.need(k)
	if err != nil {
		return nil, err
	}
	if v.c == nil {
		return nil, c.errf("%s (input %q) must be a constant known at import time", what, v.name)
	}
	return v.c, nil
}

// outName is the name of output k ("" when absent).
func (c *nodeCtx) outName(k int) string {
	if k < len(c.n.GetOutput()) {
		return c.n.GetOutput()[k]
	}
	return ""
}

// extraOutputs marks outputs from index k on as unusable.
func (c *nodeCtx) extraOutputs(k int, what string) error {
	for ; k < len(c.n.GetOutput()); k++ {
		err := c.p.define(&value{name: c.outName(k), unusable: fmt.Sprintf("the %s output of node %q, which is not supported", what, c.name)})
		if err != nil {
			return c.errf("%v", err)
		}
	}
	return nil
}

// onlyOutputs fails when the node has more than n outputs.
func (c *nodeCtx) onlyOutputs(n int) error {
	if len(c.n.GetOutput()) > n {
		return c.errf("has %d outputs, expected %d", len(c.n.GetOutput()), n)
	}
	return nil
}

// setConst defines output 0 as a constant.
func (c *nodeCtx) setConst(t *tensor) error {
	if err := checkShape(t.shape); err != nil {
		return c.errf("%v", err)
	}
	if err := c.p.define(&value{name: c.outName(0), shape: t.shape, c: t}); err != nil {
		return c.errf("%v", err)
	}
	return nil
}

// emit defines output 0 as computed by an nn node.
func (c *nodeCtx) emit(op string, shape []int, attrs nn.Attrs, ins ...*value) error {
	if err := checkShape(shape); err != nil {
		return c.errf("%v", err)
	}
	v := &value{name: c.outName(0), shape: shape}
	nd := nn.Node{Op: op, Name: c.name, Output: v.name, Attrs: attrs}
	for _, in := range ins {
		if in == nil {
			continue
		}
		nd.Inputs = append(nd.Inputs, in.name)
		v.dyn = v.dyn || in.dyn
	}
	if err := c.p.define(v); err != nil {
		return c.errf("%v", err)
	}
	if v.name != "" {
		c.p.nodes = append(c.p.nodes, nd)
	}
	return nil
}

// alloc charges n elements against the folding budget.
func (c *nodeCtx) alloc(n int) error {
	if int64(n) > c.p.budget {
		return c.errf("constant folding would allocate too much")
	}
	c.p.budget -= int64(n)
	return nil
}

// --- attributes ---

func (c *nodeCtx) attr(name string, typ onnxpb.AttributeProto_AttributeType) (*onnxpb.AttributeProto, error) {
	a := c.attrs[name]
	if a == nil {
		return nil, nil
	}
	if t := a.GetType(); t != onnxpb.AttributeProto_UNDEFINED && t != typ {
		return nil, c.errf("attribute %q has type %s, expected %s", name, t, typ)
	}
	return a, nil
}

func (c *nodeCtx) attrInt(name string, def int64) (int64, error) {
	a, err := c.attr(name, onnxpb.AttributeProto_INT)
	if a == nil || err != nil {
		return def, err
	}
	return a.GetI(), nil
}

func (c *nodeCtx) attrFloat(name string, def float32) (float32, error) {
	a, err := c.attr(name, onnxpb.AttributeProto_FLOAT)
	if a == nil || err != nil {
		return def, err
	}
	return a.GetF(), nil
}

func (c *nodeCtx) attrString(name, def string) (string, error) {
	a, err := c.attr(name, onnxpb.AttributeProto_STRING)
	if a == nil || err != nil {
		return def, err
	}
	return string(a.GetS()), nil
}

// attrInts returns a list attribute, or nil when it is absent.
func (c *nodeCtx) attrInts(name string) ([]int64, error) {
	a, err := c.attr(name, onnxpb.AttributeProto_INTS)
	if a == nil || err != nil {
		return nil, err
	}
	if a.GetInts() == nil {
		return []int64{}, nil
	}
	return a.GetInts(), nil
}

// smallInts converts a list attribute of sizes (strides, pads, ...) to ints
// in [lo, maxAttrValue]; def is used when it is absent. n > 0 requires that length.
func (c *nodeCtx) smallInts(name string, n int, lo int64, def []int) ([]int, error) {
	v, err := c.attrInts(name)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return def, nil
	}
	if n > 0 && len(v) != n {
		return nil, c.errf("attribute %s has %d values, expected %d", name, len(v), n)
	}
	out := make([]int, len(v))
	for k, x := range v {
		if x < lo || x > maxAttrValue {
			return nil, c.errf("attribute %s = %v is out of range", name, v)
		}
		out[k] = int(x)
	}
	return out, nil
}

// boolAttr reads an integer flag that must be 0 or 1.
func (c *nodeCtx) flag(name string, def int64) (bool, error) {
	v, err := c.attrInt(name, def)
	if err != nil {
		return false, err
	}
	if v != 0 && v != 1 {
		return false, c.errf("attribute %s = %d must be 0 or 1", name, v)
	}
	return v == 1, nil
}

// axis normalizes an axis attribute or value in [-rank, rank+extra).
func (c *nodeCtx) axis(a int64, rank, extra int, what string) (int, error) {
	r := int64(rank)
	if a < -r || a >= r+int64(extra) {
		return 0, c.errf("%s %d is out of range for rank %d", what, a, rank)
	}
	if a < 0 {
		a += r
	}
	return int(a), nil
}

// ints64 reads a constant 1-D (or scalar) integer vector, with no batch size in it.
func (c *nodeCtx) intVector(t *tensor, what string) ([]int64, error) {
	if len(t.shape) > 1 {
		return nil, c.errf("%s must be a 1-D tensor, has shape %v", what, t.shape)
	}
	v, err := t.ints()
	if err != nil {
		return nil, c.errf("%s: %v", what, err)
	}
	for _, x := range v {
		if x == batchMark {
			return nil, c.errf("%s depends on the run-time batch size", what)
		}
	}
	return v, nil
}

// --- shape helpers ---

// broadcast applies numpy broadcasting to two shapes.
func broadcast(a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for k := 0; k < n; k++ {
		x, y := 1, 1
		if j := k - (n - len(a)); j >= 0 {
			x = a[j]
		}
		if j := k - (n - len(b)); j >= 0 {
			y = b[j]
		}
		switch {
		case x == y:
			out[k] = x
		case x == 1:
			out[k] = y
		case y == 1:
			out[k] = x
		case x == batchDim || y == batchDim:
			return nil, fmt.Errorf("shapes %s and %s do not broadcast: the batch axis meets a fixed size", fmtShape(a), fmtShape(b))
		default:
			return nil, fmt.Errorf("shapes %s and %s do not broadcast", fmtShape(a), fmtShape(b))
		}
	}
	return out, nil
}

// fixedProduct multiplies the non-batch dimensions and counts batch axes.
// Shapes passed here have been bounded by checkShape, so it cannot overflow.
func fixedProduct(s []int) (n int, batch int) {
	n = 1
	for _, d := range s {
		if d == batchDim {
			batch++
		} else {
			n *= d
		}
	}
	return n, batch
}

// hasBatch reports whether shape s has the batch axis.
func hasBatch(s []int) bool { return slices.Contains(s, batchDim) }

// reshapeAttr is the nn Reshape target that turns shape in into out: the batch
// axis must stay the first axis (written 0, "copy").
func reshapeAttr(in, out []int) ([]int, error) {
	attr := slices.Clone(out)
	for k, d := range out {
		if d == batchDim {
			if k != 0 || len(in) == 0 || in[0] != batchDim {
				return nil, fmt.Errorf("reshaping %s to %s moves the batch axis", fmtShape(in), fmtShape(out))
			}
			attr[k] = 0
		}
	}
	if hasBatch(in) && !hasBatch(out) {
		return nil, fmt.Errorf("reshaping %s to %s drops the batch axis", fmtShape(in), fmtShape(out))
	}
	return attr, nil
}
