// Package nn describes neural networks in a framework-neutral form.
//
// A Graph is what both the architecture registry (mlp, cnn, ...) and the ONNX
// importer produce, and the only thing internal/engine compiles. Keeping one
// intermediate form means a model exported from PyTorch and a model trained by
// bulwark get the same forward pass, the same gradients and the same attacks.
//
// Layout conventions follow PyTorch and ONNX so weights can be compared with
// them directly: images are NCHW, convolution weights [out, in, kh, kw], dense
// weights [out, in] (a Gemm with TransB).
package nn

import (
	"fmt"
	"slices"
)

// Op names. Every op's inputs are value or parameter names, in ONNX order.
const (
	OpConv          = "conv"          // x, W [, b]; Strides, Pads, Dilations, Group
	OpGemm          = "gemm"          // A, B [, C]; Alpha, Beta, TransA, TransB
	OpMatMul        = "matmul"        // A, B
	OpAdd           = "add"           // A, B (numpy broadcasting)
	OpSub           = "sub"           // A, B
	OpMul           = "mul"           // A, B
	OpDiv           = "div"           // A, B
	OpRelu          = "relu"          // x
	OpSigmoid       = "sigmoid"       // x
	OpTanh          = "tanh"          // x
	OpSoftmax       = "softmax"       // x; Axis
	OpIdentity      = "identity"      // x (also Dropout at inference)
	OpMaxPool       = "maxpool"       // x; Kernel, Strides, Pads
	OpAvgPool       = "avgpool"       // x; Kernel, Strides, Pads, CountIncludePad
	OpGlobalAvgPool = "globalavgpool" // x
	OpBatchNorm     = "batchnorm"     // x, scale, bias, mean, var; Epsilon, Momentum
	OpFlatten       = "flatten"       // x; Axis
	OpReshape       = "reshape"       // x; Shape (ONNX rules: 0 copies, -1 infers)
	OpTranspose     = "transpose"     // x; Perm
	OpDense         = "dense"         // x, W [out,in], b [out]: x·Wᵀ + b, the usual linear layer
)

// Attrs holds the attributes an op may use; unused fields stay zero.
type Attrs struct {
	Kernel          []int   `json:"kernel,omitempty"`
	Strides         []int   `json:"strides,omitempty"`
	Pads            []int   `json:"pads,omitempty"` // [top, left, bottom, right] as in ONNX
	Dilations       []int   `json:"dilations,omitempty"`
	Group           int     `json:"group,omitempty"`
	Axis            int     `json:"axis,omitempty"`
	Shape           []int   `json:"shape,omitempty"`
	Perm            []int   `json:"perm,omitempty"`
	Alpha           float32 `json:"alpha,omitempty"` // gemm, used as given (the ONNX default 1 is filled in by the importer)
	Beta            float32 `json:"beta,omitempty"`
	TransA          bool    `json:"trans_a,omitempty"`
	TransB          bool    `json:"trans_b,omitempty"`
	Epsilon         float32 `json:"epsilon,omitempty"`  // batch norm; 0 means the usual 1e-5 (an ONNX epsilon of exactly 0 is read as 1e-5)
	Momentum        float32 `json:"momentum,omitempty"` // weight of the old running statistic, as in ONNX; 0 means 0.9
	CountIncludePad bool    `json:"count_include_pad,omitempty"`
}

// Node is one operation. Name is for error messages (the ONNX node name).
type Node struct {
	Op     string   `json:"op"`
	Name   string   `json:"name,omitempty"`
	Inputs []string `json:"inputs"`
	Output string   `json:"output"`
	Attrs  Attrs    `json:"attrs"`
}

// Param is a named tensor: a trainable weight, a running statistic or a constant.
type Param struct {
	Name      string    `json:"name"`
	Shape     []int     `json:"shape"`
	Data      []float32 `json:"-"`
	Trainable bool      `json:"trainable"`
	// Init says how the registry initialises a trainable parameter:
	// "he" (fan-in from Shape[1:]), "zeros", "ones". Empty for loaded data.
	Init string `json:"init,omitempty"`
}

// Size is the number of elements in the parameter.
func (p *Param) Size() int { return Numel(p.Shape) }

// Graph is a feed-forward network with one input and one output (logits).
type Graph struct {
	// Input is the name of the input value. InputShape is the shape of one
	// example, without the batch axis: [C, H, W] for images, [F] for features.
	Input      string  `json:"input"`
	InputShape []int   `json:"input_shape"`
	Nodes      []Node  `json:"nodes"` // topologically ordered
	Output     string  `json:"output"`
	Params     []Param `json:"params"`
}

// Param returns the parameter with the given name, or nil.
func (g *Graph) Param(name string) *Param {
	for i := range g.Params {
		if g.Params[i].Name == name {
			return &g.Params[i]
		}
	}
	return nil
}

// Trainable returns the indices (into Params) of the trainable parameters.
func (g *Graph) Trainable() []int {
	var idx []int
	for i, p := range g.Params {
		if p.Trainable {
			idx = append(idx, i)
		}
	}
	return idx
}

// NumParams is the number of trainable scalars.
func (g *Graph) NumParams() int {
	n := 0
	for _, i := range g.Trainable() {
		n += g.Params[i].Size()
	}
	return n
}

// Validate checks that every input is defined before it is used, that names
// are unique, that parameters carry data of the right size, and that the
// output exists. It does not check shapes: the engine does that when it
// compiles the graph, and names the node that fails.
func (g *Graph) Validate() error {
	defined := map[string]bool{g.Input: true}
	for _, p := range g.Params {
		if defined[p.Name] {
			return fmt.Errorf("name %q is defined twice", p.Name)
		}
		if p.Data != nil && len(p.Data) != p.Size() {
			return fmt.Errorf("parameter %q has %d values, its shape %v needs %d", p.Name, len(p.Data), p.Shape, p.Size())
		}
		defined[p.Name] = true
	}
	if len(g.InputShape) == 0 {
		return fmt.Errorf("graph has no input shape")
	}
	for _, d := range g.InputShape {
		if d <= 0 {
			return fmt.Errorf("input shape %v has a non-positive dimension", g.InputShape)
		}
	}
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in == "" { // optional input left out, as ONNX allows
				continue
			}
			if !defined[in] {
				return fmt.Errorf("node %d (%s %q) uses %q before it is defined", i, n.Op, n.Name, in)
			}
		}
		if n.Output == "" || defined[n.Output] {
			return fmt.Errorf("node %d (%s %q) has an empty or duplicate output name %q", i, n.Op, n.Name, n.Output)
		}
		defined[n.Output] = true
	}
	if !defined[g.Output] {
		return fmt.Errorf("graph output %q is never computed", g.Output)
	}
	return nil
}

// Clone returns a deep copy, so that training one copy never changes another.
func (g *Graph) Clone() *Graph {
	c := *g
	c.InputShape = slices.Clone(g.InputShape)
	c.Nodes = slices.Clone(g.Nodes)
	c.Params = make([]Param, len(g.Params))
	for i, p := range g.Params {
		p.Shape = slices.Clone(p.Shape)
		p.Data = slices.Clone(p.Data)
		c.Params[i] = p
	}
	return &c
}

// Numel multiplies the dimensions of a shape.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
