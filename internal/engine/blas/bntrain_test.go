package blas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/internal/testutil"
	"github.com/bulwark-sec/bulwark/nn"
)

// Batch norm in training mode has no GoMLX reference (the GoMLX engine
// cannot differentiate Rsqrt, so it cannot build resnet-mini's training
// step). It is checked in pieces instead:
//
//   - the forward pass equals the GoMLX engine's inference pass with every
//     running statistic replaced by the batch statistics of that layer,
//     which are themselves checked against the moments of the layer's input;
//   - the gradients agree with finite differences of the training loss;
//   - Trainer steps agree with an independent float64 application of the
//     optimizer and of the running-statistic update to those gradients.

// bnStats is what one batch-norm layer saw in a training-mode forward.
type bnStats struct {
	node           *nn.Node
	mean, variance []float64 // of its input, biased
	count          int
}

// trainForward runs the training plan's forward pass and returns the plan,
// the run (arena still held), the batch statistics of every batch norm,
// checked against the moments of its input, and the mean loss.
func trainForward(t *testing.T, m *Model, x []float32, y []int) (*run, []bnStats, float64) {
	t.Helper()
	n := len(y)
	p, err := m.plan(n, kindTrain)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{p: p, a: p.getArena(), x: x, params: m.params}
	p.forward(r)
	var stats []bnStats
	for j, o := range p.ops {
		bn, ok := o.(*bnOp)
		if !ok {
			continue
		}
		in := r.data(bn.in[0])
		st := bnStats{node: p.nodes[j], mean: make([]float64, bn.ch), variance: make([]float64, bn.ch), count: bn.outer * bn.inner}
		for c := range bn.ch {
			var s, ss float64
			for o := range bn.outer {
				for _, v := range in[(o*bn.ch+c)*bn.inner : (o*bn.ch+c+1)*bn.inner] {
					s += float64(v)
				}
			}
			mean := s / float64(st.count)
			for o := range bn.outer {
				for _, v := range in[(o*bn.ch+c)*bn.inner : (o*bn.ch+c+1)*bn.inner] {
					ss += (float64(v) - mean) * (float64(v) - mean)
				}
			}
			st.mean[c], st.variance[c] = mean, ss/float64(st.count)
		}
		compare(t, st.node.Name+" batch mean", r.buf(bn.meanBuf), f32(st.mean))
		rstd := make([]float64, bn.ch)
		for c, v := range st.variance {
			rstd[c] = 1 / math.Sqrt(v+float64(bn.eps))
		}
		compare(t, st.node.Name+" batch 1/std", r.buf(bn.rstdBuf), f32(rstd))
		stats = append(stats, st)
	}
	losses := make([]float32, n)
	crossEntropy(r.data(p.output), y, 1, losses, nil)
	loss := 0.0
	for _, l := range losses {
		loss += float64(l)
	}
	return r, stats, loss / float64(n)
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func randomBatch(rng *rand.Rand, n, size, classes int) ([]float32, []int) {
	y := make([]int, n)
	for i := range y {
		y[i] = rng.IntN(classes)
	}
	return testutil.RandVec(rng, n*size, 0, 1), y
}

func TestBatchNormTrainingForward(t *testing.T) {
	g, err := nn.Build("resnet-mini", []int{1, 12, 12}, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(6, 7))
	randomizeStats(g, rng)
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	x, y := randomBatch(rng, n, 144, 5)
	r, stats, _ := trainForward(t, m, x, y)
	defer r.p.putArena(r.a)
	if len(stats) != 9 {
		t.Fatalf("%d batch norms, want 9", len(stats))
	}
	sub := g.Clone()
	for _, st := range stats {
		sub.Param(st.node.Inputs[3]).Data = f32(st.mean)
		sub.Param(st.node.Inputs[4]).Data = f32(st.variance)
	}
	ref, err := engine.Compile(sub)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.Logits(x, n)
	if err != nil {
		t.Fatal(err)
	}
	compare(t, "training-mode logits", r.data(r.p.output), want)
	// The same batch in inference mode must differ (the statistics matter).
	inf, _ := m.Logits(x, n)
	if d := maxDiff(inf, want); d < 1e-2 {
		t.Errorf("inference and training logits differ by only %g", d)
	}
}

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// trainGrads returns the mean training loss and its gradient with respect
// to every trainable parameter, by the training plan.
func trainGrads(t *testing.T, m *Model, x []float32, y []int) (float64, [][]float32) {
	t.Helper()
	r, _, loss := trainForward(t, m, x, y)
	defer r.p.putArena(r.a)
	losses := make([]float32, len(y))
	crossEntropy(r.data(r.p.output), y, 1/float64(len(y)), losses, seed(r))
	r.p.backward(r)
	var grads [][]float32
	for _, i := range m.graph.Trainable() {
		grads = append(grads, slices.Clone(paramGrad(r, i)))
	}
	return loss, grads
}

func TestBatchNormTrainingGradients(t *testing.T) {
	g, err := nn.Build("resnet-mini", []int{1, 12, 12}, 5, 4)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 3))
	randomizeStats(g, rng)
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	x, y := randomBatch(rng, n, 144, 5)
	_, grads := trainGrads(t, m, x, y)
	for j, i := range g.Trainable() {
		name := g.Params[i].Name
		base := slices.Clone(m.params[i])
		grad := grads[j]
		// Direction: normalised gradient plus a normalised random vector.
		d := testutil.RandVec(rng, len(base), -1, 1)
		gn, rn := norm(grad), norm(d)
		if gn == 0 {
			gn = 1
		}
		for k := range d {
			d[k] = float32(float64(grad[k])/gn + float64(d[k])/rn)
		}
		const h = 1e-4
		at := func(s float64) float64 {
			for k := range base {
				m.params[i][k] = base[k] + float32(s)*d[k]
			}
			r, _, loss := trainForward(t, m, x, y)
			r.p.putArena(r.a)
			return loss
		}
		fd := (at(h) - at(-h)) / (2 * h)
		copy(m.params[i], base)
		an := 0.0
		for k := range d {
			an += float64(grad[k]) * float64(d[k])
		}
		if diff := math.Abs(fd - an); diff > 1e-2*math.Max(0.1, math.Abs(an)) {
			t.Errorf("%s: finite difference %.6g, analytic %.6g (diff %.3g)", name, fd, an, diff)
		}
	}
}

func norm(v []float32) float64 {
	s := 0.0
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// TestBatchNormTrainerSteps runs 5 Adam and 5 SGD-momentum steps on
// resnet-mini and replays each in float64 from the step's gradients and
// batch statistics: parameters, optimizer state and running statistics
// must follow.
func TestBatchNormTrainerSteps(t *testing.T) {
	for _, opt := range []nn.Optimizer{{Name: "adam", WeightDecay: 0.01}, {Name: "sgd", Momentum: 0.9, WeightDecay: 5e-4}} {
		t.Run(opt.Name, func(t *testing.T) {
			g, err := nn.Build("resnet-mini", []int{1, 12, 12}, 5, 5)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			randomizeStats(g, rng)
			m, err := Compile(g)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := NewTrainer(m, opt)
			if err != nil {
				t.Fatal(err)
			}
			o := opt.WithDefaults()
			lr := 1e-2
			if o.Name == "adam" {
				lr = 1e-3
			}
			train := g.Trainable()
			// Reference state in float64.
			params := make([][]float64, len(g.Params))
			for i, p := range g.Params {
				params[i] = make([]float64, p.Size())
				for k, v := range p.Data {
					params[i][k] = float64(v)
				}
			}
			slot := func() [][]float64 {
				s := make([][]float64, len(train))
				for j, i := range train {
					s[j] = make([]float64, g.Params[i].Size())
				}
				return s
			}
			m1, m2 := slot(), slot()
			const n = 16
			for step := 1; step <= 5; step++ {
				x, y := randomBatch(rng, n, 144, 5)
				// Gradients and statistics at the current parameters.
				loss, grads := trainGrads(t, m, x, y)
				r, stats, _ := trainForward(t, m, x, y)
				r.p.putArena(r.a)
				res, err := tr.Step(x, y, n, float32(lr))
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(float64(res.Loss)-loss) > tol*math.Max(1, loss) {
					t.Errorf("step %d: loss %g, want %g", step, res.Loss, loss)
				}
				for j, i := range train {
					for k, gk := range grads[j] {
						gv, w := float64(gk), params[i][k]
						switch o.Name {
						case "sgd":
							gv += float64(o.WeightDecay) * w
							m1[j][k] = float64(o.Momentum)*m1[j][k] + gv
							params[i][k] = w - lr*m1[j][k]
						case "adam":
							b1, b2 := float64(o.Beta1), float64(o.Beta2)
							m1[j][k] = b1*m1[j][k] + (1-b1)*gv
							m2[j][k] = b2*m2[j][k] + (1-b2)*gv*gv
							mh := m1[j][k] / (1 - math.Pow(b1, float64(step)))
							vh := m2[j][k] / (1 - math.Pow(b2, float64(step)))
							params[i][k] = w - lr*(mh/(math.Sqrt(vh)+float64(o.Epsilon))+float64(o.WeightDecay)*w)
						}
					}
				}
				for _, st := range stats {
					mom := float64(st.node.Attrs.Momentum)
					mean := params[paramIndex(g, st.node.Inputs[3])]
					variance := params[paramIndex(g, st.node.Inputs[4])]
					for c := range mean {
						mean[c] = mom*mean[c] + (1-mom)*st.mean[c]
						variance[c] = mom*variance[c] + (1-mom)*st.variance[c]*float64(st.count)/float64(st.count-1)
					}
				}
				got, _ := m.Params()
				for i, p := range got.Params {
					compare(t, fmt.Sprintf("step %d %s", step, p.Name), p.Data, f32(params[i]))
				}
				if t.Failed() {
					t.FailNow()
				}
				// Re-sync to the engine's float32 values so that rounding does
				// not accumulate over the steps.
				for i, p := range got.Params {
					for k, v := range p.Data {
						params[i][k] = float64(v)
					}
				}
			}
			st, _ := tr.State()
			for j, i := range train {
				name := g.Params[i].Name
				compare(t, "first moment / velocity of "+name, st.Slots[name][0], f32(m1[j]))
				if o.Name == "adam" {
					compare(t, "second moment of "+name, st.Slots[name][1], f32(m2[j]))
				}
			}
		})
	}
}

func paramIndex(g *nn.Graph, name string) int {
	for i, p := range g.Params {
		if p.Name == name {
			return i
		}
	}
	panic("no parameter " + name)
}

// TestBatchNormStatGradients checks the inference-mode gradients with
// respect to trainable running statistics (an imported model may mark them
// trainable) against finite differences: GoMLX cannot differentiate Rsqrt,
// so it cannot be the reference here.
func TestBatchNormStatGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	b := newGraph([]int{3, 4, 4}, rng)
	v := b.node(nn.OpBatchNorm, nn.Attrs{}, "x", b.param([]int{3}, 0.5, 1.5), b.param([]int{3}, -1, 1), b.param([]int{3}, -0.5, 0.5), b.param([]int{3}, 0.5, 1.5))
	b.node(nn.OpDense, nn.Attrs{}, b.flatten(v), b.param([]int{5, 48}, -1, 1))
	m, err := Compile(b.g)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	x, y := randomBatch(rng, n, 48, 5)
	pg, err := m.ParamGradients(x, y, n)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range b.g.Params {
		grad := pg[p.Name]
		d := testutil.RandVec(rng, len(grad), -1, 1)
		const h = 1e-3
		loss := func(s float64) float64 {
			g2 := b.g.Clone()
			for k := range d {
				g2.Params[i].Data[k] += float32(s) * d[k]
			}
			if err := m.SetParams(g2); err != nil {
				t.Fatal(err)
			}
			l, _, _, err := m.LossGradient(x, y, n)
			if err != nil {
				t.Fatal(err)
			}
			total := 0.0
			for _, v := range l {
				total += float64(v)
			}
			return total
		}
		fd := (loss(h) - loss(-h)) / (2 * h)
		an := 0.0
		for k := range d {
			an += float64(grad[k]) * float64(d[k])
		}
		if diff := math.Abs(fd - an); diff > 1e-2*math.Max(0.1, math.Abs(an)) {
			t.Errorf("%s: finite difference %.6g, analytic %.6g", p.Name, fd, an)
		}
	}
}
