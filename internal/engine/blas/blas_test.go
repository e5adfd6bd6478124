package blas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/internal/testutil"
	"github.com/bulwark-sec/bulwark/nn"
)

// The GoMLX engine is the reference: it is checked against finite
// differences in its own tests, and this engine must agree with it on every
// output, gradient and training step.

const tol = 1e-4

// compare fails unless got and want agree to tol, absolute or relative to
// the largest magnitude in want (float32 sums in a different order differ by
// a few ulps of the largest terms, not of each small result).
func compare(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale := 0.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	bad := 0
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > tol*math.Max(1, scale) || math.IsNaN(float64(got[i])) != math.IsNaN(float64(want[i])) {
			if bad < 5 {
				t.Errorf("%s[%d] = %.7g, want %.7g (diff %.3g, scale %.3g)", what, i, got[i], want[i], d, scale)
			}
			bad++
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d values differ", what, bad, len(want))
	}
}

// randomizeStats gives biases and batch-norm statistics non-zero values so
// that their gradients and effects show.
func randomizeStats(g *nn.Graph, rng *rand.Rand) {
	for i := range g.Params {
		p := &g.Params[i]
		if p.Init == "zeros" {
			p.Data = testutil.RandVec(rng, p.Size(), -0.1, 0.1)
		}
		if strings.HasSuffix(p.Name, "running_var") {
			p.Data = testutil.RandVec(rng, p.Size(), 0.5, 1.5)
		}
		if strings.HasSuffix(p.Name, "scale") {
			p.Data = testutil.RandVec(rng, p.Size(), 0.5, 1.5)
		}
	}
}

// compareModels checks Logits, LossGradient and ParamGradients of g on a
// random batch of n against the GoMLX engine.
func compareModels(t *testing.T, g *nn.Graph, n int, rng *rand.Rand, xlo, xhi float64) {
	t.Helper()
	ref, err := engine.Compile(g)
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	if m.NumClasses() != ref.NumClasses() || m.InputSize() != ref.InputSize() {
		t.Fatalf("classes %d, input %d; reference %d, %d", m.NumClasses(), m.InputSize(), ref.NumClasses(), ref.InputSize())
	}
	x := testutil.RandVec(rng, n*m.InputSize(), xlo, xhi)
	y := make([]int, n)
	for i := range y {
		y[i] = rng.IntN(m.NumClasses())
	}
	gotZ, err := m.Logits(x, n)
	if err != nil {
		t.Fatal(err)
	}
	wantZ, err := ref.Logits(x, n)
	if err != nil {
		t.Fatal(err)
	}
	compare(t, "logits", gotZ, wantZ)

	gl, gg, gz, err := m.LossGradient(x, y, n)
	if err != nil {
		t.Fatal(err)
	}
	wl, wg, wz, err := ref.LossGradient(x, y, n)
	if err != nil {
		t.Fatal(err)
	}
	compare(t, "losses", gl, wl)
	compare(t, "input gradient", gg, wg)
	compare(t, "LossGradient logits", gz, wz)

	gp, err := m.ParamGradients(x, y, n)
	if err != nil {
		t.Fatal(err)
	}
	wp, err := ref.ParamGradients(x, y, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(gp) != len(wp) {
		t.Errorf("%d parameter gradients, want %d", len(gp), len(wp))
	}
	for name, w := range wp {
		compare(t, "gradient of "+name, gp[name], w)
	}
}

func TestArchsMatchGoMLX(t *testing.T) {
	for _, arch := range []string{"logreg", "mlp", "cnn", "lenet", "resnet-mini"} {
		t.Run(arch, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			g, err := nn.Build(arch, []int{1, 12, 12}, 5, 7)
			if err != nil {
				t.Fatal(err)
			}
			randomizeStats(g, rng)
			compareModels(t, g, 4, rng, 0, 1)
		})
	}
}

// graphBuilder assembles small hand-made graphs for op tests.
type graphBuilder struct {
	g   *nn.Graph
	rng *rand.Rand
	n   int
}

func newGraph(input []int, rng *rand.Rand) *graphBuilder {
	return &graphBuilder{g: &nn.Graph{Input: "x", InputShape: input}, rng: rng}
}

// param adds a trainable parameter with values in [lo, hi).
func (b *graphBuilder) param(shape []int, lo, hi float64) string {
	b.n++
	name := fmt.Sprintf("p%d", b.n)
	b.g.Params = append(b.g.Params, nn.Param{Name: name, Shape: shape, Trainable: true, Data: testutil.RandVec(b.rng, nn.Numel(shape), lo, hi)})
	return name
}

// node adds a node and returns its output name; it also becomes the output.
func (b *graphBuilder) node(op string, attrs nn.Attrs, inputs ...string) string {
	b.n++
	out := fmt.Sprintf("%s%d", op, b.n)
	b.g.Nodes = append(b.g.Nodes, nn.Node{Op: op, Name: out, Inputs: inputs, Output: out, Attrs: attrs})
	b.g.Output = out
	return out
}

func (b *graphBuilder) flatten(in string) string { return b.node(nn.OpFlatten, nn.Attrs{Axis: 1}, in) }

func TestOpsMatchGoMLX(t *testing.T) {
	cases := []struct {
		name  string
		input []int
		build func(b *graphBuilder)
	}{
		{"gemm transA, C [1,5]", []int{6}, func(b *graphBuilder) {
			xt := b.node(nn.OpTranspose, nn.Attrs{}, "x") // [6, B]
			b.node(nn.OpGemm, nn.Attrs{TransA: true, Alpha: 0.7, Beta: 1.3}, xt, b.param([]int{6, 5}, -1, 1), b.param([]int{1, 5}, -1, 1))
		}},
		{"gemm transA transB, scalar C", []int{6}, func(b *graphBuilder) {
			xt := b.node(nn.OpTranspose, nn.Attrs{Perm: []int{1, 0}}, "x")
			b.node(nn.OpGemm, nn.Attrs{TransA: true, TransB: true, Alpha: 1, Beta: 0.5}, xt, b.param([]int{5, 6}, -1, 1), b.param([]int{1}, -1, 1))
		}},
		{"gemm weight first, transB input", []int{6}, func(b *graphBuilder) {
			// op(A) = W [4,6], op(B) = xᵀ [6,B]: output [4,B], transposed back.
			y := b.node(nn.OpGemm, nn.Attrs{TransB: true, Alpha: 1, Beta: 1}, b.param([]int{4, 6}, -1, 1), "x", b.param([]int{4, 1}, -1, 1))
			b.node(nn.OpTranspose, nn.Attrs{}, y)
		}},
		{"matmul 2-D", []int{6}, func(b *graphBuilder) {
			b.node(nn.OpMatMul, nn.Attrs{}, "x", b.param([]int{6, 5}, -1, 1))
		}},
		{"matmul 3-D shared weight", []int{2, 3}, func(b *graphBuilder) {
			b.flatten(b.node(nn.OpMatMul, nn.Attrs{}, "x", b.param([]int{3, 4}, -1, 1)))
		}},
		{"matmul 3-D batched", []int{2, 3}, func(b *graphBuilder) {
			// (GoMLX's ParamGradients needs at least one parameter.)
			xt := b.node(nn.OpTranspose, nn.Attrs{Perm: []int{0, 2, 1}}, b.node(nn.OpMul, nn.Attrs{}, "x", b.param([]int{2, 3}, -1, 1)))
			b.flatten(b.node(nn.OpMatMul, nn.Attrs{}, "x", xt)) // [B,2,2]
		}},
		{"matmul 2-D by 3-D", []int{3, 2}, func(b *graphBuilder) {
			b.flatten(b.node(nn.OpMatMul, nn.Attrs{}, b.param([]int{4, 3}, -1, 1), "x"))
		}},
		{"broadcasting sub mul div add", []int{3, 4, 4}, func(b *graphBuilder) {
			v := b.node(nn.OpSub, nn.Attrs{}, "x", b.param([]int{3, 1, 1}, -1, 1))
			v = b.node(nn.OpMul, nn.Attrs{}, v, b.param([]int{1, 3, 1, 1}, -1, 1))
			v = b.node(nn.OpDiv, nn.Attrs{}, v, b.param([]int{1}, 0.5, 1.5))
			v = b.node(nn.OpAdd, nn.Attrs{}, b.param([]int{4}, -1, 1), v)
			v = b.node(nn.OpDiv, nn.Attrs{}, b.param([]int{4, 1}, 0.5, 1.5), b.node(nn.OpAdd, nn.Attrs{}, v, b.param([]int{1}, 7, 8)))
			b.flatten(v)
		}},
		{"broadcasting between batch values", []int{3, 4, 4}, func(b *graphBuilder) {
			m := b.node(nn.OpGlobalAvgPool, nn.Attrs{}, "x") // [B,3,1,1]
			v := b.node(nn.OpMul, nn.Attrs{}, "x", m)
			v = b.node(nn.OpSub, nn.Attrs{}, m, v)
			f := b.flatten(v) // [B,48]
			s := b.node(nn.OpMul, nn.Attrs{}, f, b.param([]int{1, 48}, -1, 1))
			d := b.node(nn.OpDiv, nn.Attrs{}, s, b.node(nn.OpAdd, nn.Attrs{}, b.node(nn.OpSigmoid, nn.Attrs{}, f), b.param([]int{1}, 0.5, 1)))
			b.node(nn.OpDense, nn.Attrs{}, d, b.param([]int{5, 48}, -0.3, 0.3), b.param([]int{5}, -1, 1))
		}},
		{"sigmoid tanh softmax", []int{3, 4, 4}, func(b *graphBuilder) {
			v := b.node(nn.OpTanh, nn.Attrs{}, b.node(nn.OpMul, nn.Attrs{}, "x", b.param([]int{3, 1, 1}, -2, 2)))
			v = b.node(nn.OpSoftmax, nn.Attrs{Axis: 1}, v)
			v = b.node(nn.OpSigmoid, nn.Attrs{}, b.node(nn.OpMul, nn.Attrs{}, v, b.param([]int{1}, 2, 3)))
			v = b.node(nn.OpSoftmax, nn.Attrs{Axis: -1}, b.node(nn.OpMul, nn.Attrs{}, v, b.param([]int{4}, -3, 3)))
			b.flatten(v)
		}},
		{"softmax over features", []int{7}, func(b *graphBuilder) {
			v := b.node(nn.OpSoftmax, nn.Attrs{Axis: 1}, b.node(nn.OpMatMul, nn.Attrs{}, "x", b.param([]int{7, 6}, -1, 1)))
			b.node(nn.OpMatMul, nn.Attrs{}, v, b.param([]int{6, 4}, -2, 2))
		}},
		{"transpose reshape identity", []int{3, 4, 4}, func(b *graphBuilder) {
			v := b.node(nn.OpReshape, nn.Attrs{Shape: []int{0, 6, -1}}, "x") // [B,6,8]
			v = b.node(nn.OpTranspose, nn.Attrs{Perm: []int{0, 2, 1}}, v)    // [B,8,6]
			v = b.node(nn.OpMul, nn.Attrs{}, v, b.param([]int{8, 6}, -1, 1)) // per-position weights
			v = b.node(nn.OpIdentity, nn.Attrs{}, v)                         //
			v = b.node(nn.OpTranspose, nn.Attrs{Perm: []int{2, 0, 1}}, v)    // [6,B,8]
			v = b.node(nn.OpReshape, nn.Attrs{Shape: []int{6, -1, 2, 4}}, v) // [6,B,2,4]
			v = b.node(nn.OpTranspose, nn.Attrs{Perm: []int{1, 3, 0, 2}}, v) // [B,4,6,2]
			v = b.node(nn.OpReshape, nn.Attrs{Shape: []int{-1, 48}}, v)      // [B,48]
			b.node(nn.OpDense, nn.Attrs{}, v, b.param([]int{5, 48}, -1, 1))  // no bias
		}},
		{"avgpool pads, both count modes", []int{2, 6, 5}, func(b *graphBuilder) {
			a := b.node(nn.OpAvgPool, nn.Attrs{Kernel: []int{3, 3}, Strides: []int{2, 2}, Pads: []int{1, 1, 1, 1}, CountIncludePad: true}, "x")
			c := b.node(nn.OpAvgPool, nn.Attrs{Kernel: []int{3, 2}, Strides: []int{2, 2}, Pads: []int{1, 0, 1, 1}}, "x")
			d := b.node(nn.OpAvgPool, nn.Attrs{Kernel: []int{3, 3}, Strides: []int{1, 1}, Pads: []int{1, 1, 1, 1}}, "x")
			e := b.node(nn.OpAvgPool, nn.Attrs{Kernel: []int{2, 2}}, "x") // default stride 2
			// (Names are taken into variables first: Go does not order a
			// field read like b.g.Output against the calls beside it.)
			sum := b.node(nn.OpAdd, nn.Attrs{}, b.node(nn.OpAdd, nn.Attrs{}, b.flatten(a), b.flatten(c)), b.flatten(b.node(nn.OpAvgPool, nn.Attrs{Kernel: []int{2, 1}, Strides: []int{2, 2}}, d)))
			b.node(nn.OpAdd, nn.Attrs{}, sum, b.node(nn.OpDense, nn.Attrs{}, b.flatten(e), b.param([]int{18, 12}, -1, 1)))
		}},
		{"maxpool k3 s1 p1 and globalavgpool", []int{3, 5, 6}, func(b *graphBuilder) {
			m := b.node(nn.OpMaxPool, nn.Attrs{Kernel: []int{3, 3}, Strides: []int{1, 1}, Pads: []int{1, 1, 1, 1}}, "x")
			m2 := b.node(nn.OpMaxPool, nn.Attrs{Kernel: []int{3, 3}, Strides: []int{2, 2}}, "x")
			m3 := b.node(nn.OpMaxPool, nn.Attrs{Kernel: []int{2, 2}}, b.node(nn.OpRelu, nn.Attrs{}, "x")) // odd height: 2x2 pool drops a row
			g := b.node(nn.OpGlobalAvgPool, nn.Attrs{}, m)
			v := b.node(nn.OpMul, nn.Attrs{}, m, g)
			b.node(nn.OpDense, nn.Attrs{}, b.flatten(v), b.param([]int{5, 90}, -1, 1), b.param([]int{5}, -1, 1))
			out := b.g.Output
			b.node(nn.OpAdd, nn.Attrs{}, out, b.node(nn.OpDense, nn.Attrs{}, b.flatten(m2), b.param([]int{5, 12}, -1, 1)))
			out = b.g.Output
			b.node(nn.OpAdd, nn.Attrs{}, out, b.node(nn.OpDense, nn.Attrs{}, b.flatten(m3), b.param([]int{5, 18}, -1, 1)))
		}},
		{"conv strides, asymmetric pads, 1x1, no bias", []int{2, 7, 6}, func(b *graphBuilder) {
			c1 := b.node(nn.OpConv, nn.Attrs{Strides: []int{2, 1}, Pads: []int{1, 0, 2, 1}}, "x", b.param([]int{3, 2, 3, 2}, -1, 1))
			c2 := b.node(nn.OpConv, nn.Attrs{}, c1, b.param([]int{4, 3, 1, 1}, -1, 1), b.param([]int{4}, -1, 1))
			c3 := b.node(nn.OpConv, nn.Attrs{Strides: []int{2, 2}, Pads: []int{2, 2, 2, 2}}, b.node(nn.OpRelu, nn.Attrs{}, c2), b.param([]int{2, 4, 5, 5}, -0.5, 0.5), b.param([]int{2}, -1, 1))
			c4 := b.node(nn.OpConv, nn.Attrs{Strides: []int{2, 2}}, c2, b.param([]int{3, 4, 1, 1}, -1, 1))
			// Stride 1 with the output as wide as the input (the shifted
			// im2col) but lopsided padding: two columns on the left.
			c5 := b.node(nn.OpConv, nn.Attrs{Pads: []int{0, 2, 1, 0}}, "x", b.param([]int{2, 2, 2, 3}, -1, 1), b.param([]int{2}, -1, 1))
			sum := b.node(nn.OpAdd, nn.Attrs{}, b.node(nn.OpDense, nn.Attrs{}, b.flatten(c3), b.param([]int{5, 12}, -1, 1)), b.node(nn.OpDense, nn.Attrs{}, b.flatten(c4), b.param([]int{5, 18}, -1, 1)))
			b.node(nn.OpAdd, nn.Attrs{}, sum, b.node(nn.OpDense, nn.Attrs{}, b.flatten(c5), b.param([]int{5, 84}, -1, 1)))
		}},
		{"batchnorm rank 2 and 4", []int{3, 4, 4}, func(b *graphBuilder) {
			bn := func(x string, c int) string {
				// GoMLX has no gradient for Rsqrt, so the statistics stay
				// constants here (the op's own gradients for them are
				// checked against finite differences in TestBatchNormStatGradients).
				mean, variance := b.param([]int{c}, -0.5, 0.5), b.param([]int{c}, 0.5, 1.5)
				b.g.Params[len(b.g.Params)-2].Trainable = false
				b.g.Params[len(b.g.Params)-1].Trainable = false
				return b.node(nn.OpBatchNorm, nn.Attrs{Epsilon: 1e-3}, x, b.param([]int{c}, 0.5, 1.5), b.param([]int{c}, -1, 1), mean, variance)
			}
			v := b.flatten(bn("x", 3))
			v = b.node(nn.OpDense, nn.Attrs{}, v, b.param([]int{8, 48}, -1, 1), b.param([]int{8}, -1, 1))
			v = bn(v, 8)
			b.node(nn.OpDense, nn.Attrs{}, v, b.param([]int{5, 8}, -1, 1))
		}},
		{"value used twice", []int{5}, func(b *graphBuilder) {
			v := b.node(nn.OpMul, nn.Attrs{}, "x", "x")
			v = b.node(nn.OpAdd, nn.Attrs{}, v, "x")
			b.node(nn.OpDense, nn.Attrs{}, v, b.param([]int{4, 5}, -1, 1), b.param([]int{4}, -1, 1))
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			b := newGraph(tc.input, rng)
			tc.build(b)
			if err := b.g.Validate(); err != nil {
				t.Fatal(err)
			}
			compareModels(t, b.g, 3, rng, -1, 1)
		})
	}
}

// TestTrainingMatchesGoMLX runs the same steps through both engines'
// trainers and compares the losses, accuracies and every parameter after
// each step (running statistics included).
func TestTrainingMatchesGoMLX(t *testing.T) {
	opts := []nn.Optimizer{
		{Name: "adam", WeightDecay: 0.01},
		{Name: "sgd", Momentum: 0.9, WeightDecay: 5e-4},
	}
	// resnet-mini trains batch norm on batch statistics; TestBatchNormTraining*
	// also check it against a float64 replay. Only with SGD here: Adam's
	// first steps are nearly sign(g), so gradients within float32 noise of
	// zero (common after batch norm) flip whole-lr updates between engines.
	for _, arch := range []string{"cnn", "mlp", "lenet", "resnet-mini"} {
		for _, opt := range opts {
			if arch == "resnet-mini" && opt.Name == "adam" {
				continue
			}
			t.Run(arch+"/"+opt.Name, func(t *testing.T) {
				g, err := nn.Build(arch, []int{1, 12, 12}, 5, 3)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(4, 5))
				randomizeStats(g, rng)
				ref, err := engine.Compile(g)
				if err != nil {
					t.Fatal(err)
				}
				m, err := Compile(g)
				if err != nil {
					t.Fatal(err)
				}
				rt, err := engine.NewTrainer(ref, opt)
				if err != nil {
					t.Fatal(err)
				}
				tr, err := NewTrainer(m, opt)
				if err != nil {
					t.Fatal(err)
				}
				lr := float32(0.01)
				if opt.Name == "adam" {
					lr = 1e-3
				}
				const n = 16
				for step := range 5 {
					x := testutil.RandVec(rng, n*144, 0, 1)
					y := make([]int, n)
					for i := range y {
						y[i] = rng.IntN(5)
					}
					want, err := rt.Step(x, y, n, lr)
					if err != nil {
						t.Fatal(err)
					}
					got, err := tr.Step(x, y, n, lr)
					if err != nil {
						t.Fatal(err)
					}
					if math.Abs(float64(got.Loss-want.Loss)) > tol*math.Max(1, math.Abs(float64(want.Loss))) || got.Correct != want.Correct {
						t.Errorf("step %d: loss %.7g correct %d, want %.7g %d", step, got.Loss, got.Correct, want.Loss, want.Correct)
					}
					gp, _ := m.Params()
					wp, err := ref.Params()
					if err != nil {
						t.Fatal(err)
					}
					for i := range wp.Params {
						compare(t, fmt.Sprintf("step %d %s", step, wp.Params[i].Name), gp.Params[i].Data, wp.Params[i].Data)
					}
					if t.Failed() {
						t.FailNow()
					}
				}
				if tr.Steps() != 5 {
					t.Errorf("Steps() = %d", tr.Steps())
				}
				gs, _ := tr.State()
				ws, _ := rt.State()
				for name, w := range ws.Slots {
					for s := range w {
						compare(t, fmt.Sprintf("slot %d of %s", s, name), gs.Slots[name][s], w[s])
					}
				}
			})
		}
	}
}

// TestRestoreContinuesExactly checks that a trainer restored from State
// and Params takes bit-identical steps to the one it was saved from.
func TestRestoreContinuesExactly(t *testing.T) {
	for _, opt := range []nn.Optimizer{{Name: "adam", WeightDecay: 0.01}, {Name: "sgd", Momentum: 0.9}} {
		g, err := nn.Build("resnet-mini", []int{1, 12, 12}, 5, 1)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := Compile(g)
		tr, _ := NewTrainer(m, opt)
		rng := rand.New(rand.NewPCG(8, 8))
		batch := func() ([]float32, []int) {
			y := make([]int, 8)
			for i := range y {
				y[i] = rng.IntN(5)
			}
			return testutil.RandVec(rng, 8*144, 0, 1), y
		}
		for range 3 {
			x, y := batch()
			if _, err := tr.Step(x, y, 8, 1e-2); err != nil {
				t.Fatal(err)
			}
		}
		st, _ := tr.State()
		params, _ := m.Params()
		m2, err := Compile(g)
		if err != nil {
			t.Fatal(err)
		}
		if err := m2.SetParams(params); err != nil {
			t.Fatal(err)
		}
		tr2, _ := NewTrainer(m2, opt)
		if err := tr2.Restore(st); err != nil {
			t.Fatal(err)
		}
		if tr2.Steps() != 3 {
			t.Errorf("restored Steps() = %d", tr2.Steps())
		}
		for step := range 2 {
			x, y := batch()
			a, _ := tr.Step(x, y, 8, 1e-2)
			b, _ := tr2.Step(x, y, 8, 1e-2)
			if a != b {
				t.Errorf("%s step %d: %+v vs restored %+v", opt.Name, step, a, b)
			}
		}
		p1, _ := m.Params()
		p2, _ := m2.Params()
		for i := range p1.Params {
			for j, v := range p1.Params[i].Data {
				if p2.Params[i].Data[j] != v {
					t.Fatalf("%s: %s[%d] = %g after restore, %g without", opt.Name, p1.Params[i].Name, j, p2.Params[i].Data[j], v)
				}
			}
		}
		bad := st
		bad.Slots = map[string][][]float32{}
		if err := tr2.Restore(bad); err == nil && opt.Slots() > 0 {
			t.Errorf("%s: restore of empty slots accepted", opt.Name)
		}
	}
}

// TestLargeBatchSplits runs more than MaxBatch examples, which are split
// into several plans, and checks the pieces against single runs.
func TestLargeBatchSplits(t *testing.T) {
	g, err := nn.Build("cnn", []int{1, 8, 8}, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	n := MaxBatch + 5
	x := testutil.RandVec(rng, n*64, 0, 1)
	y := make([]int, n)
	for i := range y {
		y[i] = rng.IntN(3)
	}
	z, err := m.Logits(x, n)
	if err != nil {
		t.Fatal(err)
	}
	l, gr, z2, err := m.LossGradient(x, y, n)
	if err != nil {
		t.Fatal(err)
	}
	compare(t, "logits of both calls", z2, z)
	last := n - 1
	l1, g1, z1, err := m.LossGradient(x[last*64:], y[last:], 1)
	if err != nil {
		t.Fatal(err)
	}
	compare(t, "last logits", z[last*3:], z1)
	compare(t, "last loss", l[last:], l1)
	compare(t, "last gradient", gr[last*64:], g1)
	pg, err := m.ParamGradients(x, y, n)
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := m.ParamGradients(x[:MaxBatch*64], y[:MaxBatch], MaxBatch)
	pb, _ := m.ParamGradients(x[MaxBatch*64:], y[MaxBatch:], n-MaxBatch)
	for name, v := range pg {
		sum := make([]float32, len(v))
		for i := range sum {
			sum[i] = pa[name][i] + pb[name][i]
		}
		compare(t, "split gradient of "+name, v, sum)
	}
}

func TestErrors(t *testing.T) {
	g, _ := nn.Build("mlp", []int{4}, 3, 1)
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Logits(make([]float32, 7), 2); err == nil || !strings.Contains(err.Error(), "input has 7 values") {
		t.Errorf("wrong input size: %v", err)
	}
	if _, _, _, err := m.LossGradient(make([]float32, 4), []int{3}, 1); err == nil || !strings.Contains(err.Error(), "outside the model's 3 classes") {
		t.Errorf("label outside the classes: %v", err)
	}
	if _, err := m.ParamGradients(make([]float32, 8), []int{0}, 2); err == nil {
		t.Error("too few labels accepted")
	}
	tr, _ := NewTrainer(m, nn.Optimizer{Name: "sgd"})
	if _, err := tr.Step(make([]float32, 4), []int{-1}, 1, 0.1); err == nil {
		t.Error("negative label accepted")
	}
	if _, err := NewTrainer(m, nn.Optimizer{Name: "rmsprop"}); err == nil {
		t.Error("unknown optimizer accepted")
	}
	bad := g.Clone()
	bad.Params[0].Shape = []int{256, 5}
	bad.Params[0].Data = make([]float32, 256*5)
	if _, err := Compile(bad); err == nil || !strings.Contains(err.Error(), `node "dense1" (dense): input has 4 features but the weight expects 5`) {
		t.Errorf("weight of the wrong shape: %v", err)
	}
	if err := m.SetParams(bad); err == nil {
		t.Error("SetParams accepted a wrong shape")
	}

	cnn, _ := nn.Build("cnn", []int{3, 8, 8}, 3, 1)
	cnn.InputShape = []int{1, 8, 8}
	if _, err := Compile(cnn); err == nil || !strings.Contains(err.Error(), `node "conv1" (conv): input has 1 channels but the weight expects 3`) {
		t.Errorf("channel mismatch: %v", err)
	}
	cnn, _ = nn.Build("cnn", []int{1, 8, 8}, 3, 1)
	cnn.Nodes[0].Attrs.Group = 2
	if _, err := Compile(cnn); err == nil || !strings.Contains(err.Error(), "grouped convolution") {
		t.Errorf("group 2: %v", err)
	}
	cnn.Nodes[0].Attrs.Group = 1
	cnn.Nodes[0].Attrs.Dilations = []int{2, 2}
	if _, err := Compile(cnn); err == nil || !strings.Contains(err.Error(), "dilated convolution") {
		t.Errorf("dilation 2: %v", err)
	}
	b := newGraph([]int{2, 3}, rand.New(rand.NewPCG(1, 1)))
	b.node(nn.OpMatMul, nn.Attrs{}, "x", b.param([]int{4, 3}, 0, 1))
	if _, err := Compile(b.g); err == nil || !strings.Contains(err.Error(), "matmul") {
		t.Errorf("matmul shape mismatch: %v", err)
	}
	b = newGraph([]int{2}, rand.New(rand.NewPCG(1, 1)))
	b.node("lstm", nn.Attrs{}, "x")
	if _, err := Compile(b.g); err == nil || !strings.Contains(err.Error(), `unsupported op "lstm"`) {
		t.Errorf("unknown op: %v", err)
	}
}

// TestConcurrentUse runs inference and gradients from several goroutines
// (identical results expected: arenas are per call), then alongside a
// trainer taking steps (run with -race to check the locking).
func TestConcurrentUse(t *testing.T) {
	g, err := nn.Build("cnn", []int{1, 10, 10}, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	x := testutil.RandVec(rng, 6*100, 0, 1)
	y := []int{0, 1, 2, 3, 0, 1}
	want, _ := m.Logits(x, 6)
	_, wantGrad, _, _ := m.LossGradient(x, y, 6)
	done := make(chan error, 8)
	for w := range 4 {
		go func() {
			for range 10 {
				if w%2 == 0 {
					z, err := m.Logits(x, 6)
					if err == nil && maxDiff(z, want) != 0 {
						err = fmt.Errorf("concurrent logits differ by %g", maxDiff(z, want))
					}
					if err != nil {
						done <- err
						return
					}
				} else {
					_, gr, _, err := m.LossGradient(x, y, 6)
					if err == nil && maxDiff(gr, wantGrad) != 0 {
						err = fmt.Errorf("concurrent gradients differ by %g", maxDiff(gr, wantGrad))
					}
					if err != nil {
						done <- err
						return
					}
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Now with a trainer taking steps at the same time: no data races, no
	// errors, and the parameters end up those of the trainer.
	tr, err := NewTrainer(m, nn.Optimizer{Name: "sgd", Momentum: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		go func() {
			for range 10 {
				if _, _, _, err := m.LossGradient(x, y, 6); err != nil {
					done <- err
					return
				}
				if _, err := m.Params(); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 10 {
		if _, err := tr.Step(x, y, 6, 0.01); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if z, _ := m.Logits(x, 6); maxDiff(z, want) == 0 {
		t.Error("training did not change the logits")
	}
}

// TestMaxPoolTies pins down where the gradient of a tied maximum goes: to
// the first maximal element of the window in row-major order, as PyTorch
// does and as the GoMLX engine does on its general pooling path. (The GoMLX
// engine's fast path for kernel == stride tilings differs: it gives every
// tied element the full gradient, which over-counts; ties are common there,
// e.g. relu(bias) over a flat background.)
func TestMaxPoolTies(t *testing.T) {
	// Rows of one 2x4 image. Every pool below has a window covering x0, x1,
	// x4 and x5 (all 1) as its maximum: only x0 may get its gradient.
	x := []float32{
		1, 1, 2, 0,
		1, 1, 2, 2,
	}
	for _, attrs := range []nn.Attrs{
		{Kernel: []int{2, 2}}, // the tiling fast path (SIMD)
		{Kernel: []int{2, 2}, Strides: []int{2, 2}, Pads: []int{0, 0, 1, 1}},
		{Kernel: []int{3, 3}, Strides: []int{1, 1}, Pads: []int{1, 1, 1, 1}},
	} {
		g := &nn.Graph{Input: "x", InputShape: []int{1, 2, 4}, Output: "f",
			Nodes: []nn.Node{
				{Op: nn.OpMaxPool, Inputs: []string{"x"}, Output: "y", Attrs: attrs},
				{Op: nn.OpFlatten, Inputs: []string{"y"}, Output: "f", Attrs: nn.Attrs{Axis: 1}},
			}}
		m, err := Compile(g)
		if err != nil {
			t.Fatal(err)
		}
		_, grad, _, err := m.LossGradient(x, []int{0}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if grad[0] == 0 || grad[1] != 0 || grad[4] != 0 || grad[5] != 0 {
			t.Errorf("%v: input gradient %v; of the tied x0, x1, x4, x5 only x0 should have one", attrs, grad)
		}
	}
}
