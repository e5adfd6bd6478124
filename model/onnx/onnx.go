// Package onnx imports classifiers from ONNX files (as written by PyTorch's
// torch.onnx.export, opset 13 and later, also most of 7 to 12) into Bulwark's
// framework-neutral graph, nn.Graph.
//
// The importer understands the operators a feed-forward image or feature
// classifier needs and folds at import time the shape arithmetic PyTorch
// emits around Reshape, so the resulting graph holds only tensor operations.
// Every value's shape is inferred statically along the way, with the batch
// axis kept symbolic; the graph's weights become non-trainable nn.Params.
//
// ONNX operators and what they become:
//
//	Gemm, MatMul, Add, Sub, Mul, Div    gemm, matmul, add, sub, mul, div
//	Conv, MaxPool, AveragePool          conv, maxpool, avgpool (2-D, explicit pads)
//	GlobalAveragePool                   globalavgpool
//	BatchNormalization                  batchnorm (inference form)
//	Relu, Sigmoid, Tanh, Softmax        relu, sigmoid, tanh, softmax
//	Flatten, Reshape, Transpose         flatten, reshape (nn.Attrs.Shape), transpose
//	Identity, Dropout, Cast to float    identity
//	Squeeze, Unsqueeze                  reshape (of run-time values)
//	Pad (zeros, H and W only)           merged into the following Conv or AveragePool
//	Constant, initializers              parameters (folded when all inputs are constant)
//	Shape, Gather, Slice, Concat,
//	ConstantOfShape, Cast (integers)    folded at import time
//
// The input is untrusted: malformed files yield errors, never panics, and
// allocations stay bounded by the size of the input.
package onnx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/bulwark-sec/bulwark/model/onnx/onnxpb"
	"github.com/bulwark-sec/bulwark/nn"
)

// Model is an imported ONNX classifier.
type Model struct {
	Graph    *nn.Graph
	Opset    int64  // version of the default ("ai.onnx") operator set
	Producer string // producer_name and producer_version, e.g. "pytorch 1.13.0"

	InputName  string
	InputShape []int  // shape of one example as declared, batch axis removed
	Layout     string // "NCHW" for [C,H,W] inputs, "features" for [F]; "" otherwise

	NumClasses int // last dimension of the output, 0 if not known

	// OutputIsProbabilities is set when the graph ends in Softmax or Sigmoid:
	// the output is then not logits, which most attacks want.
	OutputIsProbabilities bool
}

// Load reads and imports an ONNX file. External data files are looked up in
// the file's directory and must stay inside it. Errors start with path.
func Load(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := Parse(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Parse imports an ONNX model from its serialized bytes. dir is where
// tensors stored as external data are looked up (they must stay inside it);
// with dir == "" external data is refused.
func Parse(b []byte, dir string) (*Model, error) {
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		return nil, fmt.Errorf("not a valid ONNX model: %v", err)
	}
	p := &parser{
		dir:    dir,
		vals:   map[string]*value{},
		budget: 1<<20 + 4*int64(len(b)),
	}
	return p.convert(&mp)
}

// value is an ONNX value (a tensor flowing along an edge) during import.
type value struct {
	name  string
	shape []int   // inferred shape; batchDim marks the batch axis
	c     *tensor // non-nil: a constant known at import time
	dyn   bool    // depends on the graph input

	pad      *padding // non-nil: output of a Pad, merged into the consuming Conv/AveragePool
	unusable string   // non-empty: an output that cannot be used (why)
}

// padding is a pending zero Pad of the spatial axes of a 4-D value.
type padding struct {
	src  *value
	pads [4]int // top, left, bottom, right
}

func (d *padding) zero() bool { return d.pads == [4]int{} }

type parser struct {
	dir       string
	opset     int64
	declBatch int   // the input's declared first dimension when it is a number, else 0
	budget    int64 // elements that folding may still allocate

	vals  map[string]*value
	nodes []nn.Node // candidates, in order; pruned to what the output needs
}

func (p *parser) convert(mp *onnxpb.ModelProto) (*Model, error) {
	g := mp.GetGraph()
	if g == nil {
		return nil, errors.New("the model has no graph")
	}
	for _, op := range mp.GetOpsetImport() {
		if d := op.GetDomain(); (d == "" || d == "ai.onnx") && p.opset == 0 {
			p.opset = op.GetVersion()
		}
	}
	if p.opset == 0 {
		return nil, errors.New("the model does not import the default ONNX operator set")
	}
	if p.opset < 7 {
		return nil, fmt.Errorf("opset %d is too old (7 or later is supported)", p.opset)
	}
	if len(g.GetNode()) > maxNodes {
		return nil, fmt.Errorf("the graph has %d nodes, more than the limit of %d", len(g.GetNode()), maxNodes)
	}
	if len(g.GetInitializer()) > maxInitializers {
		return nil, fmt.Errorf("the graph has %d initializers, more than the limit of %d", len(g.GetInitializer()), maxInitializers)
	}
	if len(g.GetSparseInitializer()) > 0 {
		return nil, errors.New("sparse initializers are not supported")
	}

	// Initializers are constants.
	for _, t := range g.GetInitializer() {
		name := t.GetName()
		if name == "" {
			return nil, errors.New("an initializer has no name")
		}
		c, err := p.decodeTensor(t, name)
		if err != nil {
			return nil, err
		}
		if err := p.define(&value{name: name, shape: c.shape, c: c}); err != nil {
			return nil, err
		}
	}

	// Exactly one real input: older exporters also list the initializers.
	var input *onnxpb.ValueInfoProto
	for _, in := range g.GetInput() {
		if _, isInit := p.vals[in.GetName()]; isInit && in.GetName() != "" {
			continue
		}
		if input != nil {
			return nil, fmt.Errorf("the graph has more than one input (%q and %q); one is supported", input.GetName(), in.GetName())
		}
		input = in
	}
	if input == nil {
		return nil, errors.New("the graph has no input")
	}
	inShape, err := p.inputShape(input)
	if err != nil {
		return nil, err
	}
	in := &value{name: input.GetName(), shape: append([]int{batchDim}, inShape...), dyn: true}
	if err := p.define(in); err != nil {
		return nil, err
	}

	if len(g.GetOutput()) != 1 {
		return nil, fmt.Errorf("the graph has %d outputs; exactly one is supported", len(g.GetOutput()))
	}
	outName := g.GetOutput()[0].GetName()

	for i, n := range g.GetNode() {
		if err := p.node(i, n); err != nil {
			return nil, err
		}
	}

	out := p.vals[outName]
	if out == nil {
		return nil, fmt.Errorf("graph output %q is never computed", outName)
	}
	if out.unusable != "" {
		return nil, fmt.Errorf("graph output %q is %s", outName, out.unusable)
	}
	if out.pad != nil {
		if !out.pad.zero() {
			return nil, fmt.Errorf("graph output %q is a Pad, which is only supported before Conv or AveragePool", outName)
		}
		out = out.pad.src
	}
	if !out.dyn {
		return nil, fmt.Errorf("graph output %q does not depend on the input %q", outName, in.name)
	}

	graph, err := p.build(in, out)
	if err != nil {
		return nil, err
	}
	if len(graph.Nodes) == 0 {
		return nil, fmt.Errorf("graph output %q is the input: the graph computes nothing", outName)
	}
	m := &Model{
		Graph:      graph,
		Opset:      p.opset,
		Producer:   strings.TrimSpace(mp.GetProducerName() + " " + mp.GetProducerVersion()),
		InputName:  in.name,
		InputShape: slices.Clone(inShape),
	}
	switch len(inShape) {
	case 1:
		m.Layout = "features"
	case 3:
		m.Layout = "NCHW"
	}
	if s := out.shape; len(s) >= 1 && s[len(s)-1] > 0 && (len(s) == 1 || s[0] == batchDim) {
		m.NumClasses = s[len(s)-1]
	}
	// Does the graph end in Softmax or Sigmoid (looking through identities)?
	for i := len(graph.Nodes) - 1; i >= 0; i-- {
		nd := graph.Nodes[i]
		if nd.Output != out.name {
			continue
		}
		if nd.Op == nn.OpIdentity {
			out = p.vals[nd.Inputs[0]]
			if out == nil {
				break
			}
			continue
		}
		m.OutputIsProbabilities = nd.Op == nn.OpSoftmax || nd.Op == nn.OpSigmoid
		break
	}
	return m, nil
}

// inputShape checks the declared input and returns its shape without the
// batch axis.
func (p *parser) inputShape(in *onnxpb.ValueInfoProto) ([]int, error) {
	name := in.GetName()
	if name == "" {
		return nil, errors.New("the graph input has no name")
	}
	tt := in.GetType().GetTensorType()
	if tt == nil {
		return nil, fmt.Errorf("input %q is not a tensor", name)
	}
	if et := tt.GetElemType(); et != 0 && !isFloatType(et) {
		return nil, fmt.Errorf("input %q has element type %s; a floating-point input is needed", name, dtypeName(et))
	}
	if tt.GetShape() == nil {
		return nil, fmt.Errorf("input %q has no declared shape", name)
	}
	dims := tt.GetShape().GetDim()
	if len(dims) < 2 {
		return nil, fmt.Errorf("input %q has rank %d; a batch axis and at least one more are needed", name, len(dims))
	}
	if len(dims) > maxRank {
		return nil, fmt.Errorf("input %q has rank %d, above the limit of %d", name, len(dims), maxRank)
	}
	if d := dims[0]; d.Value != nil {
		if v, ok := d.Value.(*onnxpb.TensorShapeProto_Dimension_DimValue); ok {
			if v.DimValue < 0 {
				return nil, fmt.Errorf("input %q has a negative batch dimension %d", name, v.DimValue)
			}
			if v.DimValue <= maxDim {
				p.declBatch = int(v.DimValue)
			}
		}
	}
	shape := make([]int, 0, len(dims)-1)
	for k, d := range dims[1:] {
		v, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue)
		if !ok {
			return nil, fmt.Errorf("input %q: dimension %d (%q) is symbolic; only the first (batch) dimension may be", name, k+1, d.GetDimParam())
		}
		if v.DimValue <= 0 || v.DimValue > maxDim {
			return nil, fmt.Errorf("input %q: dimension %d is %d; it must be a positive size", name, k+1, v.DimValue)
		}
		shape = append(shape, int(v.DimValue))
	}
	if err := checkShape(shape); err != nil {
		return nil, fmt.Errorf("input %q: %v", name, err)
	}
	return shape, nil
}

func (p *parser) define(v *value) error {
	if v.name == "" { // an output left out
		return nil
	}
	if _, dup := p.vals[v.name]; dup {
		return fmt.Errorf("value %q is defined more than once", v.name)
	}
	p.vals[v.name] = v
	return nil
}

// build keeps the candidate nodes the output needs and collects the constants
// they read as parameters.
func (p *parser) build(in, out *value) (*nn.Graph, error) {
	need := map[string]bool{out.name: true}
	keep := make([]bool, len(p.nodes))
	for i := len(p.nodes) - 1; i >= 0; i-- {
		if !need[p.nodes[i].Output] {
			continue
		}
		keep[i] = true
		for _, s := range p.nodes[i].Inputs {
			need[s] = true
		}
	}
	g := &nn.Graph{
		Input:      in.name,
		InputShape: slices.Clone(in.shape[1:]),
		Output:     out.name,
	}
	seen := map[string]bool{}
	shared := map[*float32]bool{}
	for i, nd := range p.nodes {
		if !keep[i] {
			continue
		}
		g.Nodes = append(g.Nodes, nd)
		for _, s := range nd.Inputs {
			v := p.vals[s]
			if s == "" || seen[s] || v == nil || v.c == nil {
				continue
			}
			seen[s] = true
			data, err := v.c.floats()
			if err != nil {
				return nil, fmt.Errorf("node %q uses %q as a tensor: %v", nd.Name, s, err)
			}
			if len(data) > 0 { // folding shares data: give every parameter its own
				if shared[&data[0]] {
					data = slices.Clone(data)
				}
				shared[&data[0]] = true
			}
			g.Params = append(g.Params, nn.Param{Name: s, Shape: slices.Clone(v.c.shape), Data: data})
		}
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("imported graph is invalid: %v", err)
	}
	return g, nil
}

// checkShape bounds an inferred shape: sizes in range, at most one batch
// axis, a bounded number of elements per example.
func checkShape(s []int) error {
	if len(s) > maxRank {
		return fmt.Errorf("rank %d is above the limit of %d", len(s), maxRank)
	}
	n, batch := int64(1), 0
	for _, d := range s {
		switch {
		case d == batchDim:
			batch++
			continue
		case d < 0:
			return fmt.Errorf("negative dimension in %s", fmtShape(s))
		case d > maxDim:
			return fmt.Errorf("dimension %d in %s is too large", d, fmtShape(s))
		}
		if d != 0 && n > maxNumel/int64(d) {
			return fmt.Errorf("shape %s has too many elements", fmtShape(s))
		}
		n *= int64(d)
	}
	if batch > 1 {
		return fmt.Errorf("shape %s would have two batch axes", fmtShape(s))
	}
	return nil
}

// fmtShape prints a shape with the batch axis as "N".
func fmtShape(s []int) string {
	var b strings.Builder
	b.WriteByte('[')
	for k, d := range s {
		if k > 0 {
			b.WriteByte(' ')
		}
		if d == batchDim {
			b.WriteByte('N')
		} else {
			fmt.Fprint(&b, d)
		}
	}
	b.WriteByte(']')
	return b.String()
}
