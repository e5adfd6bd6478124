package onnx

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/bulwark-sec/bulwark/model/onnx/onnxpb"
	"github.com/bulwark-sec/bulwark/nn"
)

const fixtures = "../../testdata/onnx"

func ops(g *nn.Graph) []string {
	var out []string
	for _, n := range g.Nodes {
		out = append(out, n.Op)
	}
	return out
}

func nodeByOp(t *testing.T, g *nn.Graph, op string) nn.Node {
	t.Helper()
	for _, n := range g.Nodes {
		if n.Op == op {
			return n
		}
	}
	t.Fatalf("no %s node in %v", op, ops(g))
	return nn.Node{}
}

func TestFixtures(t *testing.T) {
	cases := []struct {
		name  string
		ops   []string
		probs bool
	}{
		{"mlp", []string{"reshape", "gemm", "relu", "gemm"}, false},
		{"cnn", []string{"conv", "relu", "maxpool", "conv", "relu", "maxpool", "flatten", "gemm", "relu", "gemm"}, false},
		{"bn_avg", []string{"conv", "batchnorm", "relu", "avgpool", "conv", "tanh", "globalavgpool", "identity", "reshape", "gemm", "sigmoid", "gemm", "softmax"}, true},
		{"ops", []string{"avgpool", "sub", "mul", "avgpool", "div", "add", "transpose", "identity", "flatten", "matmul", "add", "sigmoid", "matmul", "add"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load(filepath.Join(fixtures, tc.name+".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			g := m.Graph
			if got := ops(g); !slices.Equal(got, tc.ops) {
				t.Errorf("ops = %v, want %v", got, tc.ops)
			}
			if m.Opset != 13 || !strings.HasPrefix(m.Producer, "pytorch ") {
				t.Errorf("opset %d, producer %q", m.Opset, m.Producer)
			}
			if m.InputName != "input" || g.Input != "input" || g.Output != "logits" {
				t.Errorf("input %q / %q, output %q", m.InputName, g.Input, g.Output)
			}
			if !slices.Equal(m.InputShape, []int{1, 28, 28}) || !slices.Equal(g.InputShape, []int{1, 28, 28}) || m.Layout != "NCHW" {
				t.Errorf("input shape %v / %v, layout %q", m.InputShape, g.InputShape, m.Layout)
			}
			if m.NumClasses != 10 {
				t.Errorf("NumClasses = %d", m.NumClasses)
			}
			if m.OutputIsProbabilities != tc.probs {
				t.Errorf("OutputIsProbabilities = %v", m.OutputIsProbabilities)
			}
			if err := g.Validate(); err != nil {
				t.Error(err)
			}
			if g.NumParams() != 0 {
				t.Errorf("%d trainable parameters, want none", g.NumParams())
			}
			for _, n := range g.Nodes {
				if n.Name == "" || n.Output == "" {
					t.Errorf("node %+v has an empty name or output", n)
				}
			}
		})
	}
}

func TestFixtureAttrs(t *testing.T) {
	load := func(name string) *nn.Graph {
		m, err := Load(filepath.Join(fixtures, name+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		return m.Graph
	}
	// mlp: x.view(x.size(0), -1) folded into one Reshape.
	g := load("mlp")
	if r := nodeByOp(t, g, nn.OpReshape); !slices.Equal(r.Attrs.Shape, []int{0, -1}) || !slices.Equal(r.Inputs, []string{"input"}) {
		t.Errorf("mlp reshape = %+v", r)
	}
	if len(g.Params) != 4 {
		t.Errorf("mlp params: %d, want 4 (no shape constants)", len(g.Params))
	}
	gemm := nodeByOp(t, g, nn.OpGemm)
	if gemm.Attrs.Alpha != 1 || gemm.Attrs.Beta != 1 || gemm.Attrs.TransA || !gemm.Attrs.TransB {
		t.Errorf("gemm attrs %+v", gemm.Attrs)
	}

	g = load("cnn")
	conv := nodeByOp(t, g, nn.OpConv)
	want := nn.Attrs{Kernel: []int{3, 3}, Strides: []int{1, 1}, Pads: []int{1, 1, 1, 1}, Dilations: []int{1, 1}, Group: 1}
	if !attrsEqual(conv.Attrs, want) {
		t.Errorf("conv attrs %+v", conv.Attrs)
	}
	mp := nodeByOp(t, g, nn.OpMaxPool)
	if !attrsEqual(mp.Attrs, nn.Attrs{Kernel: []int{2, 2}, Strides: []int{2, 2}, Pads: []int{0, 0, 0, 0}}) {
		t.Errorf("maxpool attrs %+v", mp.Attrs)
	}
	if f := nodeByOp(t, g, nn.OpFlatten); f.Attrs.Axis != 1 {
		t.Errorf("flatten axis %d", f.Attrs.Axis)
	}

	g = load("bn_avg")
	bn := nodeByOp(t, g, nn.OpBatchNorm)
	if len(bn.Inputs) != 5 || bn.Attrs.Epsilon != 1e-5 || bn.Attrs.Momentum != 0.9 {
		t.Errorf("batchnorm %+v", bn)
	}
	if r := nodeByOp(t, g, nn.OpReshape); !slices.Equal(r.Attrs.Shape, []int{-1, 12}) {
		t.Errorf("bn_avg reshape %v", r.Attrs.Shape)
	}
	// avg_pool2d(x, 2) is exported as a zero Pad and AveragePool: the Pad vanishes.
	if ap := nodeByOp(t, g, nn.OpAvgPool); !slices.Equal(ap.Attrs.Pads, []int{0, 0, 0, 0}) || !slices.Equal(ap.Inputs, []string{"/Relu_output_0"}) {
		t.Errorf("bn_avg avgpool %+v", ap.Attrs)
	}
	if sm := g.Nodes[len(g.Nodes)-1]; sm.Attrs.Axis != 1 {
		t.Errorf("softmax axis %d", sm.Attrs.Axis)
	}

	g = load("ops")
	var pools []nn.Node
	for _, n := range g.Nodes {
		if n.Op == nn.OpAvgPool {
			pools = append(pools, n)
		}
	}
	// count_include_pad=False keeps its pads; True comes as Pad + AveragePool, merged.
	if len(pools) != 2 ||
		!attrsEqual(pools[0].Attrs, nn.Attrs{Kernel: []int{3, 3}, Strides: []int{2, 2}, Pads: []int{1, 1, 1, 1}}) ||
		!attrsEqual(pools[1].Attrs, nn.Attrs{Kernel: []int{3, 3}, Strides: []int{2, 2}, Pads: []int{1, 1, 1, 1}, CountIncludePad: true}) {
		t.Errorf("ops pools %+v", pools)
	}
	if !slices.Equal(pools[1].Inputs, []string{"input"}) {
		t.Errorf("merged pool reads %v", pools[1].Inputs)
	}
	if tr := nodeByOp(t, g, nn.OpTranspose); !slices.Equal(tr.Attrs.Perm, []int{0, 1, 3, 2}) {
		t.Errorf("perm %v", tr.Attrs.Perm)
	}
	for _, c := range []struct {
		op string
		v  float32
	}{{nn.OpSub, 0.5}, {nn.OpMul, 2}, {nn.OpDiv, 0.25}} {
		n := nodeByOp(t, g, c.op)
		p := g.Param(n.Inputs[1])
		if p == nil || len(p.Shape) != 0 || !slices.Equal(p.Data, []float32{c.v}) {
			t.Errorf("%s constant = %+v", c.op, p)
		}
	}
}

func attrsEqual(a, b nn.Attrs) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestWeights compares every parameter with the file's initializers and
// Constant nodes, decoded independently here.
func TestWeights(t *testing.T) {
	for _, name := range []string{"mlp", "cnn", "bn_avg", "ops"} {
		b, err := os.ReadFile(filepath.Join(fixtures, name+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		var mp onnxpb.ModelProto
		if err := proto.Unmarshal(b, &mp); err != nil {
			t.Fatal(err)
		}
		want := map[string]*onnxpb.TensorProto{}
		for _, init := range mp.GetGraph().GetInitializer() {
			want[init.GetName()] = init
		}
		for _, n := range mp.GetGraph().GetNode() {
			if n.GetOpType() == "Constant" {
				want[n.GetOutput()[0]] = n.GetAttribute()[0].GetT()
			}
		}
		m, err := Parse(b, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Graph.Params {
			tp := want[p.Name]
			if tp == nil {
				t.Errorf("%s: parameter %q is neither an initializer nor a Constant", name, p.Name)
				continue
			}
			if tp.GetDataType() != dtFloat {
				t.Errorf("%s: %q has type %d", name, p.Name, tp.GetDataType())
				continue
			}
			if !slices.Equal(int64s(p.Shape), tp.GetDims()) {
				t.Errorf("%s: %q shape %v, want %v", name, p.Name, p.Shape, tp.GetDims())
			}
			raw := tp.GetRawData()
			if len(raw) != 4*len(p.Data) {
				t.Errorf("%s: %q has %d values for %d raw bytes", name, p.Name, len(p.Data), len(raw))
				continue
			}
			for k, v := range p.Data {
				if w := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:])); v != w {
					t.Errorf("%s: %q[%d] = %v, want %v", name, p.Name, k, v, w)
					break
				}
			}
			if p.Trainable {
				t.Errorf("%s: %q is trainable", name, p.Name)
			}
		}
	}
}

func int64s(s []int) []int64 {
	out := []int64{}
	for _, v := range s {
		out = append(out, int64(v))
	}
	return out
}

// TestGolden checks that the golden files are consistent with the models, in
// the format the engine tests read.
func TestGolden(t *testing.T) {
	for _, name := range []string{"mlp", "cnn", "bn_avg", "ops"} {
		b, err := os.ReadFile(filepath.Join(fixtures, name+".golden.json"))
		if err != nil {
			t.Fatal(err)
		}
		var gold struct {
			InputShape  []int     `json:"input_shape"`
			X           []float32 `json:"x"`
			Labels      []int     `json:"labels"`
			LogitsShape []int     `json:"logits_shape"`
			Logits      []float32 `json:"logits"`
			Grad        []float32 `json:"grad"`
		}
		if err := json.Unmarshal(b, &gold); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m, err := Load(filepath.Join(fixtures, name+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gold.InputShape, append([]int{4}, m.InputShape...)) ||
			len(gold.X) != nn.Numel(gold.InputShape) || len(gold.Grad) != len(gold.X) ||
			len(gold.Labels) != 4 || !slices.Equal(gold.LogitsShape, []int{4, m.NumClasses}) ||
			len(gold.Logits) != 4*m.NumClasses {
			t.Errorf("%s: golden shapes do not fit the model", name)
		}
		for _, v := range gold.X {
			if v < 0 || v > 1 {
				t.Fatalf("%s: input value %v outside [0,1]", name, v)
			}
		}
	}
}

func TestTruncated(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixtures, "cnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range []int{0, 1, 17, len(b) / 2, len(b) - 1} {
		path := filepath.Join(dir, "cut.onnx")
		if err := os.WriteFile(path, b[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+": ") {
			t.Errorf("truncated to %d bytes: err = %v", n, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.onnx")); err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, "missing.onnx")+": ") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestUnsupportedOp(t *testing.T) {
	m := mkModel(13, valueInfo("x", "N", 4), "y", nil, node("Erf", "erf0", []string{"x"}, []string{"y"}))
	_, err := Parse(marshal(t, m), "")
	want := `unsupported ONNX operator "Erf" in node "erf0" (supported: Add, AveragePool, BatchNormalization, Cast, Concat, Constant, ConstantOfShape, Conv, Div, Dropout, Flatten, Gather, Gemm, GlobalAveragePool, Identity, MatMul, MaxPool, Mul, Pad, Relu, Reshape, Shape, Sigmoid, Slice, Softmax, Squeeze, Sub, Tanh, Transpose, Unsqueeze)`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	// unnamed node, custom domain
	n := node("Erf", "", []string{"x"}, []string{"y"})
	n.Domain = proto.String("com.example")
	m = mkModel(13, valueInfo("x", "N", 4), "y", nil, n)
	if _, err := Parse(marshal(t, m), ""); err == nil || !strings.HasPrefix(err.Error(), `unsupported ONNX operator "com.example.Erf" in node "op_0"`) {
		t.Errorf("err = %v", err)
	}
}

func TestLinear(t *testing.T) {
	m, err := Parse(marshal(t, linearModel()), "")
	if err != nil {
		t.Fatal(err)
	}
	if m.Layout != "features" || m.NumClasses != 3 || !slices.Equal(m.InputShape, []int{4}) || m.OutputIsProbabilities {
		t.Errorf("model %+v", m)
	}
	if p := m.Graph.Param("W"); p == nil || !slices.Equal(p.Data, seq(12)) || !slices.Equal(p.Shape, []int{3, 4}) {
		t.Errorf("W = %+v", p)
	}
}

// errContains parses m and requires an error containing every part.
func errContains(t *testing.T, m *onnxpb.ModelProto, parts ...string) {
	t.Helper()
	_, err := Parse(marshal(t, m), "")
	if err == nil {
		t.Fatalf("no error, want %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestInputChecks(t *testing.T) {
	lin := func(in *onnxpb.ValueInfoProto) *onnxpb.ModelProto {
		m := linearModel()
		m.Graph.Input[0] = in
		return m
	}
	errContains(t, lin(valueInfo("x", "N", "F")), `input "x"`, "symbolic")
	errContains(t, lin(valueInfo("x", "N", -4)), `input "x"`, "-4")
	errContains(t, lin(valueInfo("x", -1, 4)), `input "x"`, "negative")
	errContains(t, lin(valueInfo("x", "N")), `input "x"`, "rank 1")
	// fixed batch sizes are batch axes too
	for _, b := range []int{1, 7} {
		if _, err := Parse(marshal(t, lin(valueInfo("x", b, 4))), ""); err != nil {
			t.Errorf("batch %d: %v", b, err)
		}
	}
	// initializers listed as inputs (old exporters) are skipped
	m := linearModel()
	m.Graph.Input = append(m.Graph.Input, valueInfo("W", 3, 4), valueInfo("b", 3))
	if _, err := Parse(marshal(t, m), ""); err != nil {
		t.Errorf("initializers as inputs: %v", err)
	}
	m.Graph.Input = append(m.Graph.Input, valueInfo("z", "N", 4))
	errContains(t, m, "more than one input")
	m = linearModel()
	m.Graph.Output = append(m.Graph.Output, m.Graph.Output[0])
	errContains(t, m, "2 outputs")
}

func TestTensorChecks(t *testing.T) {
	withW := func(w *onnxpb.TensorProto) *onnxpb.ModelProto {
		m := linearModel()
		m.Graph.Initializer[0] = w
		return m
	}
	errContains(t, withW(floatTensor("W", []int64{3, 5}, seq(12))), `"W"`, "raw_data has 48 bytes")
	errContains(t, withW(&onnxpb.TensorProto{Name: proto.String("W"), Dims: []int64{3, 4}, DataType: proto.Int32(dtFloat), FloatData: seq(11)}), `"W"`, "has 11 values")
	errContains(t, withW(floatTensor("W", []int64{-3, -4}, seq(12))), `"W"`, "negative")
	errContains(t, withW(&onnxpb.TensorProto{Name: proto.String("W"), Dims: []int64{3, 4}, DataType: proto.Int32(8)}), `"W"`, "STRING")
	// a wrong weight shape is caught at the node
	errContains(t, withW(floatTensor("W", []int64{3, 5}, seq(15))), `node "fc" (Gemm)`, "inner sizes differ")

	// typed fields: float_data, double_data, float16 in int32_data, int64
	half := []int32{0x3c00, 0xc000, 0x3555, 0x0001, 0x7c00, 0x0000, 0x8000, 0x3800, 0x4200, 0x5640, 0x0400, 0x7bff}
	wantHalf := []float32{1, -2, 0.33325195, 5.9604645e-08, float32(math.Inf(1)), 0, float32(math.Copysign(0, -1)), 0.5, 3, 100, 6.1035156e-05, 65504}
	for _, tc := range []struct {
		w    *onnxpb.TensorProto
		want []float32
	}{
		{&onnxpb.TensorProto{Name: proto.String("W"), Dims: []int64{3, 4}, DataType: proto.Int32(dtFloat), FloatData: seq(12)}, seq(12)},
		{&onnxpb.TensorProto{Name: proto.String("W"), Dims: []int64{3, 4}, DataType: proto.Int32(dtDouble), DoubleData: []float64{0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11}}, seq(12)},
		{&onnxpb.TensorProto{Name: proto.String("W"), Dims: []int64{3, 4}, DataType: proto.Int32(dtFloat16), Int32Data: half}, wantHalf},
		{&onnxpb.TensorProto{Name: proto.String("W"), Dims: []int64{3, 4}, DataType: proto.Int32(dtFloat16), RawData: halfRaw(half)}, wantHalf},
		{&onnxpb.TensorProto{Name: proto.String("W"), Dims: []int64{3, 4}, DataType: proto.Int32(dtInt64), Int64Data: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -12}}, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -12}},
	} {
		m, err := Parse(marshal(t, withW(tc.w)), "")
		if err != nil {
			t.Errorf("type %d: %v", tc.w.GetDataType(), err)
			continue
		}
		got := m.Graph.Param("W").Data
		for k := range got {
			if got[k] != tc.want[k] || math.Signbit(float64(got[k])) != math.Signbit(float64(tc.want[k])) {
				t.Errorf("type %d: W = %v, want %v", tc.w.GetDataType(), got, tc.want)
				break
			}
		}
	}
}

func halfRaw(h []int32) []byte {
	b := make([]byte, 2*len(h))
	for k, v := range h {
		binary.LittleEndian.PutUint16(b[2*k:], uint16(v))
	}
	return b
}

// externalModel is linearModel with W stored in an external file.
func externalModel(kv ...string) *onnxpb.ModelProto {
	m := linearModel()
	w := m.Graph.Initializer[0]
	w.RawData = nil
	w.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
	for k := 0; k+1 < len(kv); k += 2 {
		w.ExternalData = append(w.ExternalData, &onnxpb.StringStringEntryProto{Key: proto.String(kv[k]), Value: proto.String(kv[k+1])})
	}
	return m
}

func TestExternalData(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "model")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	raw := floatTensor("", nil, seq(12)).RawData
	data := append(make([]byte, 8), raw...) // 8 bytes of something else first
	for _, p := range []string{filepath.Join(dir, "w.bin"), filepath.Join(root, "outside.bin")} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(root, "outside.bin"), filepath.Join(dir, "link.bin")); err != nil {
		t.Fatal(err)
	}

	ok := externalModel("location", "w.bin", "offset", "8", "length", "48")
	m, err := Parse(marshal(t, ok), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Graph.Param("W").Data, seq(12)) {
		t.Errorf("W = %v", m.Graph.Param("W").Data)
	}
	// through Load, the model file's directory is used
	path := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(path, marshal(t, ok), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Errorf("Load: %v", err)
	}
	// without length: as much as the shape needs
	if _, err := Parse(marshal(t, externalModel("location", "w.bin", "offset", "8")), dir); err != nil {
		t.Errorf("no length: %v", err)
	}

	for _, tc := range []struct {
		m    *onnxpb.ModelProto
		dir  string
		want string
	}{
		{ok, "", "not allowed here"},
		{externalModel("location", "../outside.bin", "offset", "8"), dir, "leaves the model directory"},
		{externalModel("location", "sub/../../outside.bin", "offset", "8"), dir, "leaves the model directory"},
		{externalModel("location", filepath.Join(root, "outside.bin"), "offset", "8"), dir, "absolute"},
		{externalModel("location", "link.bin", "offset", "8"), dir, "symbolic link"},
		{externalModel("location", "w.bin", "offset", "100"), dir, "past the end"},
		{externalModel("location", "w.bin", "offset", "8", "length", "100"), dir, "runs past the end"},
		{externalModel("location", "w.bin", "offset", "0", "length", "56"), dir, "need 48"},
		{externalModel("location", "w.bin", "offset", "-8"), dir, "negative"},
		{externalModel("location", "missing.bin"), dir, "missing.bin"},
		{externalModel("offset", "0"), dir, "without a location"},
	} {
		_, err := Parse(marshal(t, tc.m), tc.dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `tensor "W"`) {
			t.Errorf("%v: err = %v, want %q", tc.m.Graph.Initializer[0].ExternalData, err, tc.want)
		}
	}
}

// TestShapeFolding covers the shape patterns beyond mlp.onnx's.
func TestShapeFolding(t *testing.T) {
	in := valueInfo("x", "N", 2, 3, 4)
	i64 := func(name string, v ...int64) *onnxpb.TensorProto { return int64Tensor(name, []int64{int64(len(v))}, v) }
	scalar := func(name string, v int64) *onnxpb.TensorProto { return int64Tensor(name, nil, []int64{v}) }

	// Shape -> Slice[0:1] -> Concat with ConstantOfShape-derived and Cast.
	m := mkModel(13, in, "y",
		[]*onnxpb.TensorProto{i64("s0", 0), i64("s1", 1), i64("minus1", -1), scalar("zero", 0)},
		node("Shape", "shape", []string{"x"}, []string{"sh"}),
		node("Slice", "slice", []string{"sh", "s0", "s1"}, []string{"batch"}),
		node("Gather", "g", []string{"sh", "zero"}, []string{"b0"}),
		node("Unsqueeze", "u", []string{"b0", "s0"}, []string{"b1"}),
		node("Squeeze", "sq", []string{"b1", "s0"}, []string{"b2"}),
		node("Unsqueeze", "u2", []string{"b2", "s0"}, []string{"b3"}),
		node("Cast", "cast", []string{"minus1"}, []string{"m1"}, attrI("to", int64(dtInt64))),
		node("Concat", "cat", []string{"b3", "m1"}, []string{"target"}, attrI("axis", 0)),
		node("Reshape", "r", []string{"x", "target"}, []string{"flat"}),
		node("Relu", "relu", []string{"flat"}, []string{"y"}),
	)
	got, err := Parse(marshal(t, m), "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ops(got.Graph), []string{"reshape", "relu"}) || !slices.Equal(got.Graph.Nodes[0].Attrs.Shape, []int{0, -1}) {
		t.Errorf("graph %+v", got.Graph.Nodes)
	}
	if got.NumClasses != 24 || len(got.Graph.Params) != 0 {
		t.Errorf("NumClasses %d, params %d", got.NumClasses, len(got.Graph.Params))
	}

	// The batch size anywhere but first in a Reshape target is refused.
	m = mkModel(13, in, "y",
		[]*onnxpb.TensorProto{i64("s0", 0), i64("s1", 1), i64("minus1", -1)},
		node("Shape", "shape", []string{"x"}, []string{"sh"}),
		node("Slice", "slice", []string{"sh", "s0", "s1"}, []string{"batch"}),
		node("Concat", "cat", []string{"minus1", "batch"}, []string{"target"}, attrI("axis", 0)),
		node("Reshape", "r", []string{"x", "target"}, []string{"y"}),
	)
	errContains(t, m, `node "r" (Reshape)`, "batch size appears")

	// Arithmetic on the batch size is refused; on constants it folds.
	m = mkModel(13, in, "y",
		[]*onnxpb.TensorProto{i64("s0", 0), i64("s1", 1), i64("two", 2), i64("a", 6), i64("b", 4)},
		node("Shape", "shape", []string{"x"}, []string{"sh"}),
		node("Slice", "slice", []string{"sh", "s0", "s1"}, []string{"batch"}),
		node("Mul", "mul", []string{"batch", "two"}, []string{"b2"}),
		node("Reshape", "r", []string{"x", "b2"}, []string{"y"}),
	)
	errContains(t, m, `node "mul" (Mul)`, "batch size")
	m = mkModel(13, in, "y",
		[]*onnxpb.TensorProto{i64("a", 6), i64("b", 4)},
		node("Mul", "mul", []string{"a", "b"}, []string{"ab"}),
		node("Shape", "shape", []string{"x"}, []string{"sh"}),
		node("Gather", "g", []string{"sh", "s0"}, []string{"b0"}),
		node("Concat", "cat", []string{"b0", "ab"}, []string{"target"}, attrI("axis", 0)),
		node("Reshape", "r", []string{"x", "target"}, []string{"y"}),
	)
	m.Graph.Initializer = append(m.Graph.Initializer, i64("s0", 0))
	got, err = Parse(marshal(t, m), "")
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Graph.Nodes[0]; !slices.Equal(r.Attrs.Shape, []int{0, 24}) {
		t.Errorf("reshape %v", r.Attrs.Shape)
	}

	// Squeeze/Unsqueeze of run-time values become reshapes.
	m = mkModel(11, valueInfo("x", "N", 5), "y", nil,
		node("Unsqueeze", "u", []string{"x"}, []string{"u"}, attrIs("axes", 2, -1)),
		node("Squeeze", "s", []string{"u"}, []string{"y"}, attrIs("axes", 2)),
	)
	got, err = Parse(marshal(t, m), "")
	if err != nil {
		t.Fatal(err)
	}
	if g := got.Graph; !slices.Equal(ops(g), []string{"reshape", "reshape"}) ||
		!slices.Equal(g.Nodes[0].Attrs.Shape, []int{0, 5, 1, 1}) || !slices.Equal(g.Nodes[1].Attrs.Shape, []int{0, 5, 1}) {
		t.Errorf("graph %+v", got.Graph.Nodes)
	}

	// A model exported with a fixed batch of 1: the folded [1, -1] is the batch.
	m = mkModel(13, valueInfo("x", 1, 2, 3), "y", []*onnxpb.TensorProto{i64("t", 1, -1)},
		node("Reshape", "r", []string{"x", "t"}, []string{"y"}))
	got, err = Parse(marshal(t, m), "")
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Graph.Nodes[0]; !slices.Equal(r.Attrs.Shape, []int{0, -1}) {
		t.Errorf("reshape %v", r.Attrs.Shape)
	}
	// ... but with a symbolic batch it mixes the batch axis
	m.Graph.Input[0] = valueInfo("x", "N", 2, 3)
	errContains(t, m, `node "r" (Reshape)`, "mixed")

	// ConstantOfShape and Constant attribute forms
	m = mkModel(13, valueInfo("x", "N", 3), "y", []*onnxpb.TensorProto{i64("three", 3)},
		node("ConstantOfShape", "cos", []string{"three"}, []string{"ones"}, attrT("value", floatTensor("", []int64{1}, []float32{1}))),
		node("Constant", "c", nil, []string{"c"}, attrFs("value_floats", 1, 2, 3)),
		node("Add", "add", []string{"x", "ones"}, []string{"a"}),
		node("Mul", "mul", []string{"a", "c"}, []string{"y"}),
	)
	got, err = Parse(marshal(t, m), "")
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Graph.Param("ones"); p == nil || !slices.Equal(p.Data, []float32{1, 1, 1}) {
		t.Errorf("ones = %+v", p)
	}
	if p := got.Graph.Param("c"); p == nil || !slices.Equal(p.Data, []float32{1, 2, 3}) || !slices.Equal(p.Shape, []int{3}) {
		t.Errorf("c = %+v", p)
	}
}

func TestOpChecks(t *testing.T) {
	img := valueInfo("x", "N", 3, 8, 8)
	w := floatTensor("w", []int64{4, 3, 3, 3}, seq(108))
	conv := func(attrs ...*onnxpb.AttributeProto) *onnxpb.ModelProto {
		return mkModel(13, img, "y", []*onnxpb.TensorProto{w}, node("Conv", "c", []string{"x", "w"}, []string{"y"}, attrs...))
	}
	errContains(t, conv(attrS("auto_pad", "SAME_UPPER")), `node "c" (Conv)`, "auto_pad")
	errContains(t, conv(attrI("group", 2)), `node "c" (Conv)`, "group")
	errContains(t, conv(attrIs("kernel_shape", 5, 5)), "kernel_shape")
	errContains(t, conv(attrIs("strides", 0, 1)), "strides")
	errContains(t, mkModel(13, valueInfo("x", "N", 2, 8, 8), "y", []*onnxpb.TensorProto{w}, node("Conv", "c", []string{"x", "w"}, []string{"y"})), `node "c" (Conv)`, "channels")
	errContains(t, mkModel(13, valueInfo("x", "N", 3, 8), "y", []*onnxpb.TensorProto{w}, node("Conv", "c", []string{"x", "w"}, []string{"y"})), "4-D")

	m, err := Parse(marshal(t, conv(attrIs("strides", 2, 2), attrIs("pads", 1, 0, 1, 0), attrIs("dilations", 1, 2))), "")
	if err != nil {
		t.Fatal(err)
	}
	// H: (8+2-3)/2+1 = 4, W: (8-5)/2+1 = 2
	if c := m.Graph.Nodes[0].Attrs; !slices.Equal(c.Pads, []int{1, 0, 1, 0}) || !slices.Equal(c.Dilations, []int{1, 2}) {
		t.Errorf("conv attrs %+v", c)
	}

	pool := func(op string, attrs ...*onnxpb.AttributeProto) *onnxpb.ModelProto {
		return mkModel(13, img, "y", nil, node(op, "p", []string{"x"}, []string{"y"}, append([]*onnxpb.AttributeProto{attrIs("kernel_shape", 2, 2)}, attrs...)...))
	}
	errContains(t, pool("MaxPool", attrI("ceil_mode", 1)), `node "p" (MaxPool)`, "ceil_mode")
	errContains(t, pool("MaxPool", attrIs("dilations", 2, 2)), "dilations")
	errContains(t, pool("MaxPool", attrI("storage_order", 1)), "storage_order")
	errContains(t, pool("AveragePool", attrS("auto_pad", "VALID")), "auto_pad")
	errContains(t, mkModel(13, img, "y", nil, node("MaxPool", "p", []string{"x"}, []string{"y"})), "kernel_shape is missing")

	// Dropout: mask unused is fine, used is not; training mode is refused.
	drop := mkModel(13, valueInfo("x", "N", 4), "y", nil, node("Dropout", "d", []string{"x"}, []string{"y", "mask"}))
	if _, err := Parse(marshal(t, drop), ""); err != nil {
		t.Errorf("dropout: %v", err)
	}
	drop.Graph.Node = append(drop.Graph.Node, node("Relu", "r", []string{"mask"}, []string{"z"}))
	errContains(t, drop, `node "r" (Relu)`, "mask output")
	drop = mkModel(13, valueInfo("x", "N", 4), "mask", nil, node("Dropout", "d", []string{"x"}, []string{"y", "mask"}))
	errContains(t, drop, "mask output")
	drop = mkModel(13, valueInfo("x", "N", 4), "y",
		[]*onnxpb.TensorProto{{Name: proto.String("tm"), DataType: proto.Int32(dtBool), RawData: []byte{1}}},
		node("Dropout", "d", []string{"x", "", "tm"}, []string{"y"}))
	errContains(t, drop, "training_mode")

	// Pad before Conv is merged; before MaxPool it is refused.
	pads := int64Tensor("pads", []int64{8}, []int64{0, 0, 1, 2, 0, 0, 1, 2})
	m, err = Parse(marshal(t, mkModel(13, img, "y", []*onnxpb.TensorProto{w, pads},
		node("Pad", "pad", []string{"x", "pads"}, []string{"xp"}),
		node("Conv", "c", []string{"xp", "w"}, []string{"y"}, attrIs("pads", 1, 1, 1, 1))),
	), "")
	if err != nil {
		t.Fatal(err)
	}
	if g := m.Graph; len(g.Nodes) != 1 || !slices.Equal(g.Nodes[0].Inputs, []string{"x", "w"}) || !slices.Equal(g.Nodes[0].Attrs.Pads, []int{2, 3, 2, 3}) {
		t.Errorf("padded conv %+v", g.Nodes)
	}
	errContains(t, mkModel(13, img, "y", []*onnxpb.TensorProto{pads},
		node("Pad", "pad", []string{"x", "pads"}, []string{"xp"}),
		node("MaxPool", "p", []string{"xp"}, []string{"y"}, attrIs("kernel_shape", 2, 2))),
		`node "p" (MaxPool)`, "Pad")

	// Softmax at the end, through an Identity.
	m, err = Parse(marshal(t, mkModel(13, valueInfo("x", "N", 4), "y", nil,
		node("Softmax", "s", []string{"x"}, []string{"p"}),
		node("Identity", "i", []string{"p"}, []string{"y"}))), "")
	if err != nil {
		t.Fatal(err)
	}
	if !m.OutputIsProbabilities || m.Graph.Nodes[0].Attrs.Axis != 1 {
		t.Errorf("softmax: probs %v, axis %d", m.OutputIsProbabilities, m.Graph.Nodes[0].Attrs.Axis)
	}
	// Softmax before opset 13 only over the last axis
	errContains(t, mkModel(11, img, "y", nil, node("Softmax", "s", []string{"x"}, []string{"y"})), "opset 11")

	// Reshape needs a constant target
	errContains(t, mkModel(13, valueInfo("x", "N", 4), "y", nil, node("Reshape", "r", []string{"x", "x"}, []string{"y"})), "constant")
	// use before definition, duplicate definition
	errContains(t, mkModel(13, valueInfo("x", "N", 4), "y", nil,
		node("Relu", "b", []string{"a"}, []string{"y"}), node("Relu", "a", []string{"x"}, []string{"a"})), "not defined before")
	errContains(t, mkModel(13, valueInfo("x", "N", 4), "y", nil,
		node("Relu", "a", []string{"x"}, []string{"y"}), node("Relu", "b", []string{"x"}, []string{"y"})), "more than once")
	// output independent of the input
	errContains(t, mkModel(13, valueInfo("x", "N", 4), "y", []*onnxpb.TensorProto{floatTensor("c", []int64{1}, []float32{1})},
		node("Identity", "i", []string{"c"}, []string{"y"})), "does not depend")
	errContains(t, mkModel(13, valueInfo("x", "N", 4), "x", nil), "computes nothing")
}

// TestDeadNodes: nodes the output does not need are dropped.
func TestDeadNodes(t *testing.T) {
	m, err := Parse(marshal(t, mkModel(13, valueInfo("x", "N", 4), "y", nil,
		node("Sigmoid", "dead", []string{"x"}, []string{"d"}),
		node("Relu", "", []string{"x"}, []string{"y"}))), "")
	if err != nil {
		t.Fatal(err)
	}
	if g := m.Graph; len(g.Nodes) != 1 || g.Nodes[0].Name != "op_1" {
		t.Errorf("nodes %+v", g.Nodes)
	}
}

// TestSharedData: two parameters folded from one tensor do not share memory.
func TestSharedData(t *testing.T) {
	m, err := Parse(marshal(t, mkModel(13, valueInfo("x", "N", 3), "y",
		[]*onnxpb.TensorProto{floatTensor("c", []int64{3}, []float32{1, 2, 3})},
		node("Identity", "i", []string{"c"}, []string{"c2"}),
		node("Add", "a", []string{"x", "c"}, []string{"a"}),
		node("Mul", "m", []string{"a", "c2"}, []string{"y"}))), "")
	if err != nil {
		t.Fatal(err)
	}
	c, c2 := m.Graph.Param("c"), m.Graph.Param("c2")
	if c == nil || c2 == nil || !slices.Equal(c.Data, c2.Data) {
		t.Fatalf("params %+v", m.Graph.Params)
	}
	c.Data[0] = 42
	if c2.Data[0] != 1 {
		t.Error("parameters share data")
	}
}

// TestPadForms: the attribute form (opset < 11) and the axes input (opset 18).
func TestPadForms(t *testing.T) {
	img := valueInfo("x", "N", 3, 8, 8)
	pool := node("AveragePool", "p", []string{"xp"}, []string{"y"}, attrIs("kernel_shape", 3, 3))
	for _, m := range []*onnxpb.ModelProto{
		mkModel(10, img, "y", nil, node("Pad", "pad", []string{"x"}, []string{"xp"}, attrIs("pads", 0, 0, 1, 2, 0, 0, 3, 4)), pool),
		mkModel(18, img, "y", []*onnxpb.TensorProto{int64Tensor("pads", []int64{4}, []int64{1, 2, 3, 4}), int64Tensor("axes", []int64{2}, []int64{-2, 3})},
			node("Pad", "pad", []string{"x", "pads", "", "axes"}, []string{"xp"}), pool),
	} {
		got, err := Parse(marshal(t, m), "")
		if err != nil {
			t.Fatal(err)
		}
		a := got.Graph.Nodes[0].Attrs
		if len(got.Graph.Nodes) != 1 || !slices.Equal(a.Pads, []int{1, 2, 3, 4}) || !a.CountIncludePad {
			t.Errorf("opset %d: %+v", m.OpsetImport[0].GetVersion(), got.Graph.Nodes)
		}
	}
	// padding with a value other than zero, or the channel axis, is refused
	errContains(t, mkModel(10, img, "y", nil, node("Pad", "pad", []string{"x"}, []string{"xp"}, attrIs("pads", 0, 0, 1, 2, 0, 0, 3, 4), attrF("value", 1)), pool), "only zeros")
	errContains(t, mkModel(10, img, "y", nil, node("Pad", "pad", []string{"x"}, []string{"xp"}, attrIs("pads", 0, 1, 1, 2, 0, 0, 3, 4)), pool), "H and W")
	errContains(t, mkModel(10, img, "y", nil, node("Pad", "pad", []string{"x"}, []string{"xp"}, attrIs("pads", 0, 0, 1, 2, 0, 0, 3, 4), attrS("mode", "reflect")), pool), "reflect")
}
