package onnx

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-sec/bulwark/model/onnx/onnxpb"
)

// seedModels are small hand-built models that reach most of the importer.
func seedModels() []*onnxpb.ModelProto {
	i64 := func(name string, v ...int64) *onnxpb.TensorProto { return int64Tensor(name, []int64{int64(len(v))}, v) }
	img := valueInfo("x", "N", 3, 8, 8)
	w := floatTensor("w", []int64{4, 3, 3, 3}, seq(108))
	b := floatTensor("b", []int64{4}, seq(4))
	ch := func(name string) *onnxpb.TensorProto { return floatTensor(name, []int64{4}, seq(4)) }
	return []*onnxpb.ModelProto{
		linearModel(),
		mkModel(13, valueInfo("x", "N", 2, 3, 4), "y",
			[]*onnxpb.TensorProto{i64("s0", 0), i64("s1", 1), i64("minus1", -1), int64Tensor("zero", nil, []int64{0})},
			node("Shape", "shape", []string{"x"}, []string{"sh"}),
			node("Slice", "slice", []string{"sh", "s0", "s1"}, []string{"batch"}),
			node("Gather", "g", []string{"sh", "zero"}, []string{"b0"}),
			node("Unsqueeze", "u", []string{"b0", "s0"}, []string{"b1"}),
			node("Squeeze", "sq", []string{"b1", "s0"}, []string{"b2"}),
			node("Unsqueeze", "u2", []string{"b2", "s0"}, []string{"b3"}),
			node("Cast", "cast", []string{"minus1"}, []string{"m1"}, attrI("to", int64(dtInt64))),
			node("Concat", "cat", []string{"b3", "m1"}, []string{"target"}, attrI("axis", 0)),
			node("Reshape", "r", []string{"x", "target"}, []string{"flat"}),
			node("Mul", "mul", []string{"s1", "minus1"}, []string{"prod"}),
			node("ConstantOfShape", "cos", []string{"s1"}, []string{"ones"}, attrT("value", floatTensor("", []int64{1}, []float32{1}))),
			node("Add", "add", []string{"flat", "ones"}, []string{"y"}),
		),
		mkModel(13, img, "y", []*onnxpb.TensorProto{w, b, ch("sc"), ch("bi"), ch("mu"), ch("va"), i64("pads", 0, 0, 1, 1, 0, 0, 1, 1),
			floatTensor("w2", []int64{4, 5}, seq(20))},
			node("Pad", "pad", []string{"x", "pads"}, []string{"xp"}),
			node("Conv", "c", []string{"xp", "w", "b"}, []string{"c"}, attrIs("strides", 1, 1), attrIs("kernel_shape", 3, 3), attrI("group", 1)),
			node("BatchNormalization", "bn", []string{"c", "sc", "bi", "mu", "va"}, []string{"bn"}, attrF("epsilon", 1e-3)),
			node("Relu", "relu", []string{"bn"}, []string{"r"}),
			node("MaxPool", "mp", []string{"r"}, []string{"m"}, attrIs("kernel_shape", 2, 2), attrIs("strides", 2, 2)),
			node("Pad", "pad2", []string{"m", "pads"}, []string{"mp"}),
			node("AveragePool", "ap", []string{"mp"}, []string{"a"}, attrIs("kernel_shape", 3, 3), attrI("count_include_pad", 1)),
			node("GlobalAveragePool", "gap", []string{"a"}, []string{"g"}),
			node("Flatten", "f", []string{"g"}, []string{"f"}, attrI("axis", 1)),
			node("Dropout", "d", []string{"f"}, []string{"d", "mask"}),
			node("Transpose", "t", []string{"d"}, []string{"t"}, attrIs("perm", 1, 0)),
			node("Transpose", "t2", []string{"t"}, []string{"t2"}),
			node("MatMul", "mm", []string{"t2", "w2"}, []string{"mm"}),
			node("Sigmoid", "s", []string{"mm"}, []string{"s"}),
			node("Tanh", "th", []string{"s"}, []string{"th"}),
			node("Softmax", "sm", []string{"th"}, []string{"y"}, attrI("axis", -1)),
		),
		mkModel(11, valueInfo("x", 1, 5), "y", []*onnxpb.TensorProto{i64("t", 1, -1)},
			node("Unsqueeze", "u", []string{"x"}, []string{"u"}, attrIs("axes", 2, -1)),
			node("Squeeze", "s", []string{"u"}, []string{"s"}, attrIs("axes", 2)),
			node("Constant", "c", nil, []string{"c"}, attrFs("value_floats", 1, 2, 3, 4, 5)),
			node("Constant", "k", nil, []string{"k"}, attrF("value_float", 2)),
			node("Div", "div", []string{"s", "k"}, []string{"dv"}),
			node("Reshape", "r", []string{"dv", "t"}, []string{"rs"}),
			node("Sub", "sub", []string{"rs", "c"}, []string{"sb"}),
			node("Identity", "id", []string{"sb"}, []string{"y"}),
		),
		externalModel("location", "w.bin", "offset", "8"),
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"mlp", "cnn", "bn_avg", "ops"} {
		b, err := os.ReadFile(filepath.Join(fixtures, name+".onnx"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, m := range seedModels() {
		f.Add(marshal(f, m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b, "")
		if err != nil {
			return
		}
		g := m.Graph
		if err := g.Validate(); err != nil {
			t.Fatalf("accepted an invalid graph: %v", err)
		}
		for _, p := range g.Params {
			if len(p.Data) != p.Size() || p.Trainable {
				t.Fatalf("bad parameter %q", p.Name)
			}
		}
		if len(g.InputShape) == 0 || g.Output == "" || len(g.Nodes) == 0 {
			t.Fatalf("incomplete graph %+v", g)
		}
	})
}

// TestSeedModels makes sure the hand-built seeds import (except the one with
// external data, which Parse(b, "") must refuse).
func TestSeedModels(t *testing.T) {
	seeds := seedModels()
	for k, m := range seeds {
		_, err := Parse(marshal(t, m), "")
		if (err != nil) != (k == len(seeds)-1) {
			t.Errorf("seed %d: %v", k, err)
		}
	}
}
