package onnx

import (
	"math"
	"math/rand"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/bulwark-sec/bulwark/model/onnx/onnxpb"
)

// TestStructuredMutations complements FuzzParse, whose byte-level mutations
// rarely get past protobuf decoding into the shape logic: it changes the
// hand-built seed models field by field (attribute values, dims, op types,
// wiring) and requires Parse to return, with a valid graph or an error.
func TestStructuredMutations(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	iters := 1000
	if testing.Short() {
		iters = 100
	}
	ints := []int64{-3, -2, -1, 0, 1, 2, 3, 4, 7, 1 << 20, maxDim, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	pick := func() int64 { return ints[rng.Intn(len(ints))] }
	opNames := Supported()
	for _, seed := range seedModels() {
		for it := 0; it < iters; it++ {
			m := proto.Clone(seed).(*onnxpb.ModelProto)
			g := m.Graph
			for n := 1 + rng.Intn(3); n > 0; n-- {
				switch rng.Intn(9) {
				case 0: // attribute value
					if len(g.Node) == 0 {
						continue
					}
					nd := g.Node[rng.Intn(len(g.Node))]
					for _, a := range nd.Attribute {
						if rng.Intn(2) == 0 {
							a.I = proto.Int64(pick())
							for k := range a.Ints {
								a.Ints[k] = pick()
							}
							if rng.Intn(4) == 0 {
								a.Ints = append(a.Ints, pick())
							}
							a.F = proto.Float32(float32(pick()))
						}
					}
				case 1: // new attribute
					if len(g.Node) == 0 {
						continue
					}
					nd := g.Node[rng.Intn(len(g.Node))]
					names := []string{"axis", "axes", "perm", "pads", "strides", "kernel_shape", "group", "to", "start", "end", "transA", "transB", "count_include_pad", "allowzero"}
					name := names[rng.Intn(len(names))]
					if rng.Intn(2) == 0 {
						nd.Attribute = append(nd.Attribute, attrI(name, pick()))
					} else {
						nd.Attribute = append(nd.Attribute, attrIs(name, pick(), pick(), pick(), pick()))
					}
				case 2: // initializer dims
					if len(g.Initializer) == 0 {
						continue
					}
					init := g.Initializer[rng.Intn(len(g.Initializer))]
					if len(init.Dims) > 0 && rng.Intn(2) == 0 {
						init.Dims[rng.Intn(len(init.Dims))] = pick()
					} else {
						init.Dims = append(init.Dims, 1)
					}
				case 3: // initializer int data
					for _, init := range g.Initializer {
						for k := range init.Int64Data {
							if rng.Intn(3) == 0 {
								init.Int64Data[k] = pick()
							}
						}
					}
				case 4: // op type
					if len(g.Node) == 0 {
						continue
					}
					g.Node[rng.Intn(len(g.Node))].OpType = proto.String(opNames[rng.Intn(len(opNames))])
				case 5: // wiring
					if len(g.Node) == 0 {
						continue
					}
					nd := g.Node[rng.Intn(len(g.Node))]
					src := g.Node[rng.Intn(len(g.Node))]
					if len(nd.Input) > 0 && len(src.Output) > 0 {
						nd.Input[rng.Intn(len(nd.Input))] = src.Output[0]
					}
					if rng.Intn(3) == 0 {
						nd.Input = append(nd.Input, "")
					}
				case 6: // input dims
					dims := g.Input[0].GetType().GetTensorType().GetShape().GetDim()
					if len(dims) > 0 {
						dims[rng.Intn(len(dims))].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: pick()}
					}
				case 7: // opset
					m.OpsetImport[0].Version = proto.Int64([]int64{7, 9, 10, 11, 12, 13, 14, 18}[rng.Intn(8)])
				case 8: // output
					if len(g.Node) > 0 {
						nd := g.Node[rng.Intn(len(g.Node))]
						if len(nd.Output) > 0 {
							g.Output[0].Name = proto.String(nd.Output[rng.Intn(len(nd.Output))])
						}
					}
				}
			}
			b, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Parse(b, "")
			if err == nil {
				if err := res.Graph.Validate(); err != nil {
					t.Fatalf("accepted an invalid graph: %v", err)
				}
			}
		}
	}
}
