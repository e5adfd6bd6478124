package engine

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/testutil"
	"github.com/bulwark-sec/bulwark/nn"
)

func sum(v []float32) float64 {
	s := 0.0
	for _, x := range v {
		s += float64(x)
	}
	return s
}

func dot(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// checkDirectional compares an analytic gradient with a central finite
// difference, (f(x+hd) - f(x-hd)) / 2h ≈ ∇f·d, along d = ĝ + r̂: the
// normalised gradient plus a normalised random direction. The gradient part
// makes the signal large; the random part catches errors the gradient's own
// direction cannot show (wrong components orthogonal to it).
func checkDirectional(t *testing.T, what string, f func(x []float32) float64, x, grad []float32, rng *rand.Rand) {
	t.Helper()
	r := testutil.RandVec(rng, len(x), -1, 1)
	gn, rn := math.Sqrt(dot(grad, grad)), math.Sqrt(dot(r, r))
	if gn == 0 {
		gn = 1
	}
	d := make([]float32, len(x))
	for i := range d {
		d[i] = float32(float64(grad[i])/gn + float64(r[i])/rn)
	}
	const h = 1e-4
	at := func(k float32) float64 {
		xs := make([]float32, len(x))
		for i := range x {
			xs[i] = x[i] + k*h*d[i]
		}
		return f(xs)
	}
	f0 := at(0)
	fd := (at(1) - at(-1)) / (2 * h)
	// The loss is float32: each evaluation is off by ~ulp(|f|), so the
	// difference quotient carries ~2^-23·|f|/h of rounding. The tolerance is
	// 1% of the derivative plus four times that noise.
	noise := math.Abs(f0) * 0x1p-23 / h
	an := dot(grad, d)
	if diff := math.Abs(fd - an); diff > 1e-2*math.Abs(an)+4*noise+1e-6 {
		t.Errorf("%s: finite difference %.6g, analytic %.6g (diff %.3g)", what, fd, an, diff)
	}
}

// The engine runs float32 like the models it serves; along a direction of
// norm ~1, the kinks of relu and max are rarely crossed by random data.

func lossOf(t *testing.T, m *Model, x []float32, y []int) float64 {
	t.Helper()
	l, _, _, err := m.LossGradient(x, y, len(y))
	if err != nil {
		t.Fatal(err)
	}
	return sum(l)
}

func TestArchGradientsMatchFiniteDifferences(t *testing.T) {
	for _, arch := range []string{"logreg", "mlp", "cnn", "lenet", "resnet-mini"} {
		t.Run(arch, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			g, err := nn.Build(arch, []int{1, 12, 12}, 5, 7)
			if err != nil {
				t.Fatal(err)
			}
			// Non-zero biases and BN statistics, so their gradients matter.
			for i := range g.Params {
				p := &g.Params[i]
				if p.Init == "zeros" {
					p.Data = testutil.RandVec(rng, p.Size(), -0.1, 0.1)
				}
				if strings.HasSuffix(p.Name, "running_var") {
					p.Data = testutil.RandVec(rng, p.Size(), 0.5, 1.5)
				}
			}
			m, err := Compile(g)
			if err != nil {
				t.Fatal(err)
			}
			if m.NumClasses() != 5 {
				t.Fatalf("classes = %d, want 5", m.NumClasses())
			}
			const n = 3
			x := testutil.RandVec(rng, n*144, 0, 1)
			y := []int{0, 3, 4}
			_, grad, _, err := m.LossGradient(x, y, n)
			if err != nil {
				t.Fatal(err)
			}
			checkDirectional(t, "input", func(x []float32) float64 { return lossOf(t, m, x, y) }, x, grad, rng)

			pg, err := m.ParamGradients(x, y, n)
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range g.Trainable() {
				name := g.Params[i].Name
				base := g.Params[i].Data
				f := func(p []float32) float64 {
					g2 := g.Clone()
					g2.Params[i].Data = p
					m2, err := Compile(g2)
					if err != nil {
						t.Fatal(err)
					}
					return lossOf(t, m2, x, y)
				}
				checkDirectional(t, name, f, base, pg[name], rng)
			}
		})
	}
}

// conv2dRef is a direct NCHW convolution, the textbook definition.
func conv2dRef(x []float32, b, c, h, w int, k []float32, o, kh, kw, stride, pad int, bias []float32) ([]float32, int, int) {
	ho, wo := (h+2*pad-kh)/stride+1, (w+2*pad-kw)/stride+1
	out := make([]float32, b*o*ho*wo)
	for n := 0; n < b; n++ {
		for oc := 0; oc < o; oc++ {
			for i := 0; i < ho; i++ {
				for j := 0; j < wo; j++ {
					s := float64(bias[oc])
					for ic := 0; ic < c; ic++ {
						for di := 0; di < kh; di++ {
							for dj := 0; dj < kw; dj++ {
								r, cc := i*stride+di-pad, j*stride+dj-pad
								if r < 0 || r >= h || cc < 0 || cc >= w {
									continue
								}
								s += float64(x[((n*c+ic)*h+r)*w+cc]) * float64(k[((oc*c+ic)*kh+di)*kw+dj])
							}
						}
					}
					out[((n*o+oc)*ho+i)*wo+j] = float32(s)
				}
			}
		}
	}
	return out, ho, wo
}

func TestConvMatchesDirectDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ c, h, w, o, k, stride, pad int }{
		{1, 7, 6, 3, 3, 1, 1}, {2, 8, 8, 4, 3, 2, 1}, {3, 5, 5, 2, 1, 1, 0}, {2, 9, 7, 3, 5, 2, 2},
	} {
		const b = 2
		x := testutil.RandVec(rng, b*tc.c*tc.h*tc.w, -1, 1)
		k := testutil.RandVec(rng, tc.o*tc.c*tc.k*tc.k, -1, 1)
		bias := testutil.RandVec(rng, tc.o, -1, 1)
		want, _, _ := conv2dRef(x, b, tc.c, tc.h, tc.w, k, tc.o, tc.k, tc.k, tc.stride, tc.pad, bias)
		g := &nn.Graph{Input: "x", InputShape: []int{tc.c, tc.h, tc.w}, Output: "flat",
			Params: []nn.Param{{Name: "k", Shape: []int{tc.o, tc.c, tc.k, tc.k}, Data: k}, {Name: "b", Shape: []int{tc.o}, Data: bias}},
			Nodes: []nn.Node{
				{Op: nn.OpConv, Inputs: []string{"x", "k", "b"}, Output: "y", Attrs: nn.Attrs{Kernel: []int{tc.k, tc.k}, Strides: []int{tc.stride, tc.stride}, Pads: []int{tc.pad, tc.pad, tc.pad, tc.pad}}},
				{Op: nn.OpFlatten, Inputs: []string{"y"}, Output: "flat", Attrs: nn.Attrs{Axis: 1}},
			}}
		m, err := Compile(g)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Logits(x, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%+v: %d outputs, want %d", tc, len(got), len(want))
		}
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-4 {
				t.Fatalf("%+v: output %d = %g, want %g", tc, i, got[i], want[i])
			}
		}
	}
}

// poolRef is max or average pooling over NCHW by definition.
func poolRef(x []float32, b, c, h, w, k, s, pad int, max, countPad bool) []float32 {
	ho, wo := (h+2*pad-k)/s+1, (w+2*pad-k)/s+1
	var out []float32
	for n := 0; n < b*c; n++ {
		for i := 0; i < ho; i++ {
			for j := 0; j < wo; j++ {
				best, total, cnt := float32(math.Inf(-1)), float32(0), 0
				for di := 0; di < k; di++ {
					for dj := 0; dj < k; dj++ {
						r, cc := i*s+di-pad, j*s+dj-pad
						if r < 0 || r >= h || cc < 0 || cc >= w {
							continue
						}
						v := x[(n*h+r)*w+cc]
						best = max32(best, v)
						total += v
						cnt++
					}
				}
				switch {
				case max:
					out = append(out, best)
				case countPad:
					out = append(out, total/float32(k*k))
				default:
					out = append(out, total/float32(cnt))
				}
			}
		}
	}
	return out
}

func max32(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

func TestPoolsMatchDefinitionAndGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		op              string
		k, s, pad       int
		countIncludePad bool
	}{
		{nn.OpMaxPool, 2, 2, 0, false}, {nn.OpMaxPool, 3, 1, 1, false}, {nn.OpMaxPool, 3, 2, 0, false},
		{nn.OpAvgPool, 2, 2, 0, false}, {nn.OpAvgPool, 3, 1, 1, false}, {nn.OpAvgPool, 3, 2, 1, true},
	} {
		const b, c, h, w = 2, 3, 6, 6
		x := testutil.RandVec(rng, b*c*h*w, -1, 1)
		want := poolRef(x, b, c, h, w, tc.k, tc.s, tc.pad, tc.op == nn.OpMaxPool, tc.countIncludePad)
		g := &nn.Graph{Input: "x", InputShape: []int{c, h, w}, Output: "flat",
			Nodes: []nn.Node{
				{Op: tc.op, Inputs: []string{"x"}, Output: "y", Attrs: nn.Attrs{Kernel: []int{tc.k, tc.k}, Strides: []int{tc.s, tc.s}, Pads: []int{tc.pad, tc.pad, tc.pad, tc.pad}, CountIncludePad: tc.countIncludePad}},
				{Op: nn.OpFlatten, Inputs: []string{"y"}, Output: "flat", Attrs: nn.Attrs{Axis: 1}},
			}}
		m, err := Compile(g)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Logits(x, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%+v: %d outputs, want %d", tc, len(got), len(want))
		}
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-5 {
				t.Fatalf("%+v: output %d = %g, want %g", tc, i, got[i], want[i])
			}
		}
		// Gradient through the pool: treat the pooled values as logits.
		classes := len(want) / b
		y := []int{1, classes - 1}
		_, grad, _, err := m.LossGradient(x, y, b)
		if err != nil {
			t.Fatal(err)
		}
		checkDirectional(t, tc.op, func(x []float32) float64 { return lossOf(t, m, x, y) }, x, grad, rng)
	}
}

func TestBadInputIsAnError(t *testing.T) {
	g, _ := nn.Build("mlp", []int{4}, 3, 1)
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Logits(make([]float32, 7), 2); err == nil {
		t.Error("wrong input size accepted")
	}
	if _, _, _, err := m.LossGradient(make([]float32, 4), []int{3}, 1); err == nil {
		t.Error("label outside the classes accepted")
	}
	bad := g.Clone()
	bad.Params[0].Shape = []int{256, 5}
	bad.Params[0].Data = make([]float32, 256*5)
	if _, err := Compile(bad); err == nil {
		t.Error("weight of the wrong shape compiled")
	}
}

// TestPerExampleGradients checks the batch trick against the gradient of
// each example computed alone.
func TestPerExampleGradients(t *testing.T) {
	for _, arch := range []string{"mlp", "cnn", "lenet"} {
		g, err := nn.Build(arch, []int{1, 12, 12}, 4, 3)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Compile(g)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(4, 4))
		const n = 3
		x := testutil.RandVec(rng, n*144, 0, 1)
		y := []int{1, 3, 0}
		per, err := m.PerExampleGradients(x, y, n)
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		for i := 0; i < n; i++ {
			one, err := m.ParamGradients(x[i*144:(i+1)*144], y[i:i+1], 1)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range one {
				got := per[name][i*len(want) : (i+1)*len(want)]
				for j := range want {
					if math.Abs(float64(got[j]-want[j])) > 1e-4*math.Max(1, math.Abs(float64(want[j]))) {
						t.Fatalf("%s: example %d %s[%d] = %g, alone %g", arch, i, name, j, got[j], want[j])
					}
				}
			}
		}
	}
	g, _ := nn.Build("resnet-mini", []int{1, 8, 8}, 3, 1)
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.PerExampleGradients(make([]float32, 64), []int{0}, 1); err == nil || !strings.Contains(err.Error(), "batchnorm") {
		t.Errorf("batch norm model: %v", err)
	}
}

// TestOpGradientsMatchFiniteDifferences covers the ops the architectures do
// not use (as ONNX imports do), chained in one graph.
func TestOpGradientsMatchFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	p := func(name string, shape ...int) nn.Param {
		return nn.Param{Name: name, Shape: shape, Data: testutil.RandVec(rng, nn.Numel(shape), -1, 1), Trainable: true}
	}
	div := p("div", 48)
	for i := range div.Data {
		div.Data[i] = 0.5 + float32(math.Abs(float64(div.Data[i]))) // away from zero
	}
	g := &nn.Graph{Input: "x", InputShape: []int{2, 4, 4}, Output: "out",
		Params: []nn.Param{p("w", 3, 2, 3, 3), p("scale", 3, 1, 1), p("shift", 1), div, p("B", 48, 5), p("C", 5), p("M", 4, 5), p("bias", 4)},
		Nodes: []nn.Node{
			{Op: nn.OpConv, Inputs: []string{"x", "w"}, Output: "c", Attrs: nn.Attrs{Kernel: []int{3, 3}, Pads: []int{1, 1, 1, 1}}},
			{Op: nn.OpMul, Inputs: []string{"c", "scale"}, Output: "m"},
			{Op: nn.OpSub, Inputs: []string{"m", "shift"}, Output: "s"},
			{Op: nn.OpSigmoid, Inputs: []string{"s"}, Output: "sg"},
			{Op: nn.OpAvgPool, Inputs: []string{"sg"}, Output: "ap", Attrs: nn.Attrs{Kernel: []int{3, 3}, Strides: []int{1, 1}, Pads: []int{1, 1, 1, 1}}},
			{Op: nn.OpTranspose, Inputs: []string{"ap"}, Output: "tr", Attrs: nn.Attrs{Perm: []int{0, 1, 3, 2}}},
			{Op: nn.OpReshape, Inputs: []string{"tr"}, Output: "r", Attrs: nn.Attrs{Shape: []int{0, -1}}},
			{Op: nn.OpDiv, Inputs: []string{"r", "div"}, Output: "d"},
			{Op: nn.OpTanh, Inputs: []string{"d"}, Output: "th"},
			{Op: nn.OpGemm, Inputs: []string{"th", "B", "C"}, Output: "gm", Attrs: nn.Attrs{Alpha: 0.5, Beta: 2}},
			{Op: nn.OpTranspose, Inputs: []string{"M"}, Output: "Mt"},
			{Op: nn.OpMatMul, Inputs: []string{"gm", "Mt"}, Output: "mm"},
			{Op: nn.OpAdd, Inputs: []string{"mm", "bias"}, Output: "a"},
			{Op: nn.OpSoftmax, Inputs: []string{"a"}, Output: "out", Attrs: nn.Attrs{Axis: -1}},
		}}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2
	x := testutil.RandVec(rng, n*32, 0, 1)
	y := []int{1, 3}
	_, grad, _, err := m.LossGradient(x, y, n)
	if err != nil {
		t.Fatal(err)
	}
	checkDirectional(t, "input", func(x []float32) float64 { return lossOf(t, m, x, y) }, x, grad, rng)
	pg, err := m.ParamGradients(x, y, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range g.Params {
		name := g.Params[i].Name
		f := func(v []float32) float64 {
			g2 := g.Clone()
			g2.Params[i].Data = v
			m2, err := Compile(g2)
			if err != nil {
				t.Fatal(err)
			}
			return lossOf(t, m2, x, y)
		}
		checkDirectional(t, name, f, g.Params[i].Data, pg[name], rng)
	}
}

// TestMaxPoolTiesGiveOneWinner: on a flat input every element of a window
// ties; the gradient must reach exactly one of them, as in PyTorch.
func TestMaxPoolTiesGiveOneWinner(t *testing.T) {
	g := &nn.Graph{Input: "x", InputShape: []int{1, 4, 4}, Output: "flat",
		Nodes: []nn.Node{
			{Op: nn.OpMaxPool, Inputs: []string{"x"}, Output: "y", Attrs: nn.Attrs{Kernel: []int{2, 2}, Strides: []int{2, 2}}},
			{Op: nn.OpFlatten, Inputs: []string{"y"}, Output: "flat", Attrs: nn.Attrs{Axis: 1}},
		}}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 16)
	for i := range x {
		x[i] = 0.5
	}
	_, grad, _, err := m.LossGradient(x, []int{2}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for wi := 0; wi < 2; wi++ {
		for wj := 0; wj < 2; wj++ {
			nonzero := 0
			for i := 0; i < 2; i++ {
				for j := 0; j < 2; j++ {
					if grad[(wi*2+i)*4+wj*2+j] != 0 {
						nonzero++
					}
				}
			}
			if nonzero != 1 {
				t.Errorf("window (%d,%d): gradient reaches %d tied inputs, want 1", wi, wj, nonzero)
			}
		}
	}
}
