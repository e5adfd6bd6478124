package blas

import (
	"github.com/bulwark-sec/bulwark/internal/engine"
)

// Per-example gradients for DP-SGD, with the batch trick (Goodfellow 2015,
// "Efficient per-example gradient computations"): one batched forward and
// backward pass gives, for every dense and conv layer, its input a and the
// gradient dy of its output; row i of both depends on example i alone (batch
// norm, which would mix them, is refused), so
//
//	dense: ∇W_i = dy_iᵀ·a_i (an outer product), ∇b_i = dy_i, and
//	       ‖∇W_i‖² + ‖∇b_i‖² = ‖a_i‖²·‖dy_i‖² + ‖dy_i‖² without forming ∇W_i
//	       ("ghost" norms; Goodfellow 2015, Li et al. 2021, "Large Language
//	       Models Can Be Strong Differentially Private Learners");
//	conv:  ∇W_i = dY_i·cols_iᵀ, one sgemm per image, which the backward pass
//	       writes to a block of its own (with its squared norm, while in
//	       cache) instead of adding into one sum. For this project's convs
//	       that is cheaper than the Gram-matrix ghost norm, which costs
//	       (Ho·Wo)²·(O+C·kh·kw) per image against O·C·kh·kw·Ho·Wo (Li et
//	       al. recommend ghost norms only when 2·(Ho·Wo)² < O·C·kh·kw).
//
// The clipped sum Σ_i c_i·∇θ_i then needs no second backward pass: the
// output gradients a backward pass seeded with c_i·dL_i/dz would produce
// are c_i·dy_i (backpropagation is linear and rows are independent), so
// each dense layer takes one product (diag(c)·dY)ᵀ·A and each conv layer
// one weighted sum of its stored ∇W_i: the "book-keeping" variant of ghost
// clipping (Bu et al. 2023, "Differentially Private Optimization on Large
// Model at Small Cost"). The dense weight products the normal backward
// pass does are skipped in the first pass, so a clipped step costs about
// one training step plus the norms.

// peLayer is one layer of a per-example plan: an op with trainable
// parameters (engine.ClipLayers checked it is dense or conv).
type peLayer struct {
	op           int // index into plan.ops
	weight, bias int // trainable parameter indices, -1 if none
}

func (p *plan) perExampleLayers() ([]peLayer, error) {
	ls, err := engine.ClipLayers(p.g)
	if err != nil {
		return nil, err
	}
	var out []peLayer
	for _, l := range ls {
		b := p.ops[l.Node].base()
		pl := peLayer{op: l.Node, weight: -1, bias: -1}
		for _, i := range l.Params {
			if i == b.in[1] {
				pl.weight = i
			} else {
				pl.bias = i
			}
		}
		out = append(out, pl)
	}
	return out, nil
}

// padStep: a per-example plan runs k examples in a batch of k rounded up
// to a multiple of padStep, so that Poisson-sampled batches, whose size
// varies from step to step, share a few plans (each costs its buffers).
const padStep = 16

func padded(k int) int { return min(MaxBatch, (k+padStep-1)/padStep*padStep) }

// perExample runs the per-example plan on examples [lo, hi) of x: forward,
// losses, backward, then use. Padding examples are zeros whose output
// gradient is zero, so every gradient they touch stays zero. It returns
// how many of the examples were classified right.
func (m *Model) perExample(x []float32, labels []int, lo, hi int, losses []float32, use func(r *run, k int)) (int, error) {
	k := hi - lo
	p, err := m.plan(padded(k), kindPerExample)
	if err != nil {
		return 0, err
	}
	size := m.InputSize()
	a := p.getArena()
	defer p.putArena(a)
	xs := x[lo*size : hi*size]
	if p.n != k {
		pad := a.bufs[p.padBuf]
		copy(pad, xs)
		clear(pad[len(xs):])
		xs = pad
	}
	r := &run{p: p, a: a, x: xs, params: m.params}
	p.forward(r)
	c := m.classes
	z := r.data(p.output)[:k*c]
	dz := seed(r)
	if dz == nil {
		// No trainable parameter reaches the output: all gradients are 0.
		crossEntropy(z, labels[lo:hi], 1, losses[lo:hi], nil)
		return countCorrect(z, labels[lo:hi]), nil
	}
	crossEntropy(z, labels[lo:hi], 1, losses[lo:hi], dz[:k*c])
	clear(dz[k*c:])
	p.backward(r)
	use(r, k)
	return countCorrect(z, labels[lo:hi]), nil
}

// sqNorms returns the squared gradient norm of every layer for each of
// the first k examples: sq[layer][example].
func (p *plan) sqNorms(r *run, k int) [][]float64 {
	sq := make([][]float64, len(p.layers))
	for l, pl := range p.layers {
		sq[l] = make([]float64, k)
		o := p.ops[pl.op]
		if !p.hasGrad(o) {
			continue // the layer does not reach the output
		}
		switch o := o.(type) {
		case *convOp:
			for i, v := range r.buf(o.sqBuf)[:k] {
				sq[l][i] = float64(v)
			}
		case *denseOp:
			a, dy := r.data(o.in[0]), r.grad(o.out)
			for i := range k {
				g := sumSquares(dy[i*o.n : (i+1)*o.n])
				if pl.weight >= 0 {
					sq[l][i] += sumSquares(a[i*o.k:(i+1)*o.k]) * g
				}
				if pl.bias >= 0 {
					sq[l][i] += g
				}
			}
		}
	}
	return sq
}

// addClipped adds Σ_i scales[l][i]·∇θ_il of the first k examples to sum
// for every layer l. It scales the dense layers' output gradients in place.
func (p *plan) addClipped(r *run, k int, scales [][]float64, sum map[string][]float32) {
	for l, pl := range p.layers {
		o := p.ops[pl.op]
		if !p.hasGrad(o) {
			continue
		}
		var sw, sb []float32
		if pl.weight >= 0 {
			sw = sum[p.g.Params[pl.weight].Name]
		}
		if pl.bias >= 0 {
			sb = sum[p.g.Params[pl.bias].Name]
		}
		c := scales[l]
		switch o := o.(type) {
		case *denseOp:
			a, dy := r.data(o.in[0]), r.grad(o.out)
			for i := range k {
				scaleBy(dy[i*o.n:(i+1)*o.n], float32(c[i]))
			}
			if sw != nil {
				// ΣW += (diag(c)·dY)ᵀ·A over the k real rows.
				pgemm(p.workers, true, false, o.n, o.k, k, 1, dy, o.n, a, o.k, 1, sw, o.k, nil)
			}
			for i := range k {
				if sb != nil {
					addTo(sb, dy[i*o.n:(i+1)*o.n])
				}
			}
		case *convOp:
			weighted := func(dst []float32, per []float32) {
				size := len(dst)
				// Columns of the sum split across workers: each keeps its
				// part in cache while streaming every example's block.
				parallelAligned(p.workers, size, 1024, func(_, lo, hi int) {
					for i := range k {
						axpy(dst[lo:hi], float32(c[i]), per[i*size+lo:i*size+hi])
					}
				})
			}
			if sw != nil {
				weighted(sw, r.buf(o.dwBuf))
			}
			if sb != nil {
				weighted(sb, r.buf(o.dbBuf))
			}
		}
	}
}

func scaleBy(x []float32, c float32) {
	if c == 1 {
		return
	}
	for i := range x {
		x[i] *= c
	}
}

// ClippedGradientSum returns the sum over n examples of each example's
// cross-entropy gradient clipped to norm clip (engine.ClippedGradientSum
// says how), each example's unclipped gradient norm, losses and the number
// classified right, from one forward and one backward pass per chunk of
// MaxBatch examples.
func (m *Model) ClippedGradientSum(x []float32, labels []int, n int, clip float64, perLayer bool) (*engine.Clipped, error) {
	if err := engine.CheckClip(m.InputSize(), x, labels, n, m.classes, clip); err != nil {
		return nil, err
	}
	if _, err := engine.ClipLayers(m.graph); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	res := &engine.Clipped{Sum: map[string][]float32{}, Losses: make([]float32, n), Norms: make([]float64, 0, n)}
	for _, i := range m.graph.Trainable() {
		res.Sum[m.graph.Params[i].Name] = make([]float32, m.graph.Params[i].Size())
	}
	err := chunks(n, func(lo, hi int) error {
		correct, err := m.perExample(x, labels, lo, hi, res.Losses, func(r *run, k int) {
			scales, norms := engine.ClipScales(r.p.sqNorms(r, k), clip, perLayer)
			res.Norms = append(res.Norms, norms...)
			r.p.addClipped(r, k, scales, res.Sum)
		})
		res.Correct += correct
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(res.Norms) < n {
		// No layer reaches the output (or there is none): zero gradients.
		res.Norms = append(res.Norms, make([]float64, n-len(res.Norms))...)
	}
	return res, nil
}

// PerExampleGradients returns every example's own parameter gradients (n
// blocks per trainable parameter, example-major), from the same pass as
// ClippedGradientSum: outer products for dense layers, the per-image
// products for conv layers.
func (m *Model) PerExampleGradients(x []float32, labels []int, n int) (map[string][]float32, error) {
	if err := m.checkBatch(x, n); err != nil {
		return nil, err
	}
	if err := m.checkLabels(labels, n); err != nil {
		return nil, err
	}
	if _, err := engine.ClipLayers(m.graph); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	g := m.graph
	out := map[string][]float32{}
	for _, i := range g.Trainable() {
		out[g.Params[i].Name] = make([]float32, n*g.Params[i].Size())
	}
	losses := make([]float32, n)
	return out, chunks(n, func(lo, hi int) error {
		_, err := m.perExample(x, labels, lo, hi, losses, func(r *run, k int) {
			p := r.p
			for _, pl := range p.layers {
				o := p.ops[pl.op]
				if !p.hasGrad(o) {
					continue
				}
				var ow, ob []float32
				if pl.weight >= 0 {
					ow = out[g.Params[pl.weight].Name]
				}
				if pl.bias >= 0 {
					ob = out[g.Params[pl.bias].Name]
				}
				switch o := o.(type) {
				case *denseOp:
					a, dy := r.data(o.in[0]), r.grad(o.out)
					sz := o.n * o.k
					for i := range k {
						dyi := dy[i*o.n : (i+1)*o.n]
						if ow != nil {
							gemm(false, false, o.n, o.k, 1, 1, dyi, 1, a[i*o.k:(i+1)*o.k], o.k, 0, ow[(lo+i)*sz:(lo+i+1)*sz], o.k)
						}
						if ob != nil {
							copy(ob[(lo+i)*o.n:], dyi)
						}
					}
				case *convOp:
					if ow != nil {
						sz := o.o * o.k
						copy(ow[lo*sz:(lo+k)*sz], r.buf(o.dwBuf)[:k*sz])
					}
					if ob != nil {
						copy(ob[lo*o.o:(lo+k)*o.o], r.buf(o.dbBuf)[:k*o.o])
					}
				}
			}
		})
		return err
	})
}

var _ engine.Clipper = (*Model)(nil)
