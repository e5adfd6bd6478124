package onnx

import (
	"encoding/binary"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/bulwark-sec/bulwark/model/onnx/onnxpb"
)

// Helpers that build small ONNX models by hand.

func node(op, name string, ins, outs []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: ins, Output: outs, Attribute: attrs}
}

func attrI(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrIs(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func attrF(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func attrFs(name string, v ...float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOATS.Enum(), Floats: v}
}

func attrS(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func attrT(name string, t *onnxpb.TensorProto) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t}
}

// floatTensor stores data as little-endian raw_data.
func floatTensor(name string, dims []int64, data []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(data))
	for k, v := range data {
		binary.LittleEndian.PutUint32(raw[4*k:], math.Float32bits(v))
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(dtFloat), RawData: raw}
}

func int64Tensor(name string, dims []int64, data []int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(dtInt64), Int64Data: data}
}

// dim is an int (fixed size) or a string (symbolic).
func valueInfo(name string, dims ...any) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		var dm onnxpb.TensorShapeProto_Dimension
		switch d := d.(type) {
		case int:
			dm.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}
		case string:
			dm.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}
		}
		shape.Dim = append(shape.Dim, &dm)
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(dtFloat), Shape: shape,
		}}},
	}
}

// mkModel builds a model with input "x" of the given shape and output out.
func mkModel(opset int64, in *onnxpb.ValueInfoProto, out string, inits []*onnxpb.TensorProto, nodes ...*onnxpb.NodeProto) *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:    proto.Int64(7),
		ProducerName: proto.String("bulwark-test"),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String("g"),
			Node:        nodes,
			Initializer: inits,
			Input:       []*onnxpb.ValueInfoProto{in},
			Output:      []*onnxpb.ValueInfoProto{{Name: proto.String(out)}},
		},
	}
}

func marshal(t testing.TB, m *onnxpb.ModelProto) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seq returns 0, 0.01, 0.02, ... (n values).
func seq(n int) []float32 {
	out := make([]float32, n)
	for k := range out {
		out[k] = float32(k) / 100
	}
	return out
}

// linearModel is x[N,4] -> Gemm(W[3,4], b[3], transB) -> y.
func linearModel() *onnxpb.ModelProto {
	return mkModel(13, valueInfo("x", "N", 4), "y",
		[]*onnxpb.TensorProto{floatTensor("W", []int64{3, 4}, seq(12)), floatTensor("b", []int64{3}, seq(3))},
		node("Gemm", "fc", []string{"x", "W", "b"}, []string{"y"}, attrI("transB", 1)))
}
