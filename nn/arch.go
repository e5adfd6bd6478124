package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// Arch builds a network for an input shape and a number of classes.
type Arch struct {
	Name        string
	Description string
	// Images says the architecture needs [C, H, W] input; otherwise any shape
	// is flattened.
	Images bool
	Build  func(input []int, classes int) (*Graph, error)
}

var archs = map[string]Arch{}

func register(a Arch) { archs[a.Name] = a }

// Archs lists the registered architectures by name.
func Archs() []Arch {
	var out []Arch
	for _, a := range archs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ArchNames lists the architecture names, sorted.
func ArchNames() []string {
	var names []string
	for _, a := range Archs() {
		names = append(names, a.Name)
	}
	return names
}

// Build returns the named architecture for the input shape and classes,
// with parameters initialised from seed.
func Build(name string, input []int, classes int, seed uint64) (*Graph, error) {
	a, ok := archs[name]
	if !ok {
		return nil, fmt.Errorf("unknown architecture %q (known: %s)", name, strings.Join(ArchNames(), ", "))
	}
	if classes < 2 {
		return nil, fmt.Errorf("architecture %s: need at least 2 classes, got %d", name, classes)
	}
	if a.Images && len(input) != 3 {
		return nil, fmt.Errorf("architecture %s needs image input [C, H, W], the data has examples of shape %v", name, input)
	}
	g, err := a.Build(input, classes)
	if err != nil {
		return nil, fmt.Errorf("architecture %s: %w", name, err)
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("architecture %s: %w", name, err)
	}
	Init(g, seed)
	return g, nil
}

// Init fills every parameter that has an Init rule: He-normal weights (the
// fan-in is the product of all but the first dimension), zero biases, unit
// scales. The same seed gives the same values.
func Init(g *Graph, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x6275_6c77_6172_6b)) // "bulwark"
	for i := range g.Params {
		p := &g.Params[i]
		if p.Init == "" {
			continue
		}
		p.Data = make([]float32, p.Size())
		switch p.Init {
		case "he":
			fanIn := Numel(p.Shape[1:])
			std := math.Sqrt(2 / float64(fanIn))
			for j := range p.Data {
				p.Data[j] = float32(rng.NormFloat64() * std)
			}
		case "ones":
			for j := range p.Data {
				p.Data[j] = 1
			}
		}
	}
}

// seq builds a graph one layer at a time; each layer consumes the previous
// value. Shapes are tracked so layers can size their weights.
type seq struct {
	g     *Graph
	cur   string
	shape []int // per-example shape of cur, logical layout
	n     int
}

func newSeq(input []int) *seq {
	s := &seq{g: &Graph{Input: "input", InputShape: append([]int(nil), input...)}, cur: "input", shape: input}
	return s
}

func (s *seq) name(prefix string) string { s.n++; return fmt.Sprintf("%s%d", prefix, s.n) }

func (s *seq) add(op string, attrs Attrs, shape []int, params ...Param) {
	out := s.name(op)
	inputs := []string{s.cur}
	for _, p := range params {
		p.Name = out + "." + p.Name
		inputs = append(inputs, p.Name)
		s.g.Params = append(s.g.Params, p)
	}
	s.g.Nodes = append(s.g.Nodes, Node{Op: op, Name: out, Inputs: inputs, Output: out, Attrs: attrs})
	s.cur, s.shape = out, shape
}

func (s *seq) flatten() {
	if len(s.shape) > 1 {
		s.add(OpFlatten, Attrs{Axis: 1}, []int{Numel(s.shape)})
	}
}

func (s *seq) dense(out int) {
	in := Numel(s.shape)
	s.add(OpDense, Attrs{}, []int{out},
		Param{Name: "weight", Shape: []int{out, in}, Trainable: true, Init: "he"},
		Param{Name: "bias", Shape: []int{out}, Trainable: true, Init: "zeros"})
}

func (s *seq) relu() { s.add(OpRelu, Attrs{}, s.shape) }

// conv adds a k x k convolution with the given stride and "same"-style padding.
func (s *seq) conv(out, k, stride, pad int, bias bool) {
	c, h, w := s.shape[0], s.shape[1], s.shape[2]
	ho, wo := (h+2*pad-k)/stride+1, (w+2*pad-k)/stride+1
	params := []Param{{Name: "weight", Shape: []int{out, c, k, k}, Trainable: true, Init: "he"}}
	if bias {
		params = append(params, Param{Name: "bias", Shape: []int{out}, Trainable: true, Init: "zeros"})
	}
	s.add(OpConv, Attrs{Kernel: []int{k, k}, Strides: []int{stride, stride}, Pads: []int{pad, pad, pad, pad}}, []int{out, ho, wo}, params...)
}

func (s *seq) maxPool(k int) error {
	if s.shape[1] < k || s.shape[2] < k {
		return fmt.Errorf("input %v is too small for another %dx%d pooling", s.shape, k, k)
	}
	s.add(OpMaxPool, Attrs{Kernel: []int{k, k}, Strides: []int{k, k}}, []int{s.shape[0], s.shape[1] / k, s.shape[2] / k})
	return nil
}

func (s *seq) batchNorm() {
	c := s.shape[0]
	s.add(OpBatchNorm, Attrs{Epsilon: 1e-5, Momentum: 0.9}, s.shape,
		Param{Name: "scale", Shape: []int{c}, Trainable: true, Init: "ones"},
		Param{Name: "bias", Shape: []int{c}, Trainable: true, Init: "zeros"},
		Param{Name: "running_mean", Shape: []int{c}, Init: "zeros"},
		Param{Name: "running_var", Shape: []int{c}, Init: "ones"})
}

func (s *seq) done() *Graph {
	s.g.Output = s.cur
	return s.g
}

func init() {
	register(Arch{Name: "logreg", Description: "multinomial logistic regression (one dense layer)",
		Build: func(in []int, k int) (*Graph, error) {
			s := newSeq(in)
			s.flatten()
			s.dense(k)
			return s.done(), nil
		}})
	register(Arch{Name: "mlp", Description: "multilayer perceptron: dense256-relu-dense256-relu-dense",
		Build: func(in []int, k int) (*Graph, error) {
			s := newSeq(in)
			s.flatten()
			s.dense(256)
			s.relu()
			s.dense(256)
			s.relu()
			s.dense(k)
			return s.done(), nil
		}})
	register(Arch{Name: "cnn", Images: true, Description: "conv32-pool-conv64-pool-dense128-dense (3x3 convolutions, 2x2 max-pooling)",
		Build: func(in []int, k int) (*Graph, error) {
			s := newSeq(in)
			s.conv(32, 3, 1, 1, true)
			s.relu()
			if err := s.maxPool(2); err != nil {
				return nil, err
			}
			s.conv(64, 3, 1, 1, true)
			s.relu()
			if err := s.maxPool(2); err != nil {
				return nil, err
			}
			s.flatten()
			s.dense(128)
			s.relu()
			s.dense(k)
			return s.done(), nil
		}})
	register(Arch{Name: "lenet", Images: true, Description: "LeNet-5 with ReLU and max-pooling: conv6(5x5)-pool-conv16(5x5)-pool-dense120-dense84-dense",
		Build: func(in []int, k int) (*Graph, error) {
			s := newSeq(in)
			s.conv(6, 5, 1, 2, true)
			s.relu()
			if err := s.maxPool(2); err != nil {
				return nil, err
			}
			if s.shape[1] < 5 || s.shape[2] < 5 {
				return nil, fmt.Errorf("input %v is too small for lenet", in)
			}
			s.conv(16, 5, 1, 0, true)
			s.relu()
			if err := s.maxPool(2); err != nil {
				return nil, err
			}
			s.flatten()
			s.dense(120)
			s.relu()
			s.dense(84)
			s.relu()
			s.dense(k)
			return s.done(), nil
		}})
	register(Arch{Name: "resnet-mini", Images: true, Description: "small residual network: conv16-bn, residual stages of 16, 32 and 64 channels (stride 2 between), global average pooling, dense",
		Build: buildResNetMini})
}

// buildResNetMini is a CIFAR-style ResNet with one basic block per stage.
func buildResNetMini(in []int, k int) (*Graph, error) {
	if in[1] < 4 || in[2] < 4 {
		return nil, fmt.Errorf("input %v is too small for resnet-mini", in)
	}
	s := newSeq(in)
	s.conv(16, 3, 1, 1, false)
	s.batchNorm()
	s.relu()
	for i, ch := range []int{16, 32, 64} {
		stride := 1
		if i > 0 {
			stride = 2
		}
		s.block(ch, stride)
	}
	s.add(OpGlobalAvgPool, Attrs{}, []int{s.shape[0], 1, 1})
	s.flatten()
	s.dense(k)
	return s.done(), nil
}

// block is a basic residual block: conv-bn-relu-conv-bn plus a shortcut
// (a strided 1x1 convolution when the shape changes), then relu.
func (s *seq) block(ch, stride int) {
	inName, inShape := s.cur, s.shape
	s.conv(ch, 3, stride, 1, false)
	s.batchNorm()
	s.relu()
	s.conv(ch, 3, 1, 1, false)
	s.batchNorm()
	mainName, mainShape := s.cur, s.shape
	short := inName
	if stride != 1 || inShape[0] != ch {
		s.cur, s.shape = inName, inShape
		s.conv(ch, 1, stride, 0, false)
		s.batchNorm()
		short = s.cur
	}
	out := s.name("add")
	s.g.Nodes = append(s.g.Nodes, Node{Op: OpAdd, Name: out, Inputs: []string{mainName, short}, Output: out})
	s.cur, s.shape = out, mainShape
	s.relu()
}
