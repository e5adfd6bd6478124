package blas

import (
	"fmt"
	"slices"

	"github.com/bulwark-sec/bulwark/nn"
)

// betaOf is the sgemm beta that writes (0) or adds (1) the product.
func betaOf(acc bool) float32 {
	if acc {
		return 1
	}
	return 0
}

// product describes Y = alpha·op(A)·op(B) with op(A) m×k, op(B) k×n, A
// and B row-major with leading dimensions lda and ldb and Y m×n dense. It is
// what dense, gemm and matmul share, forward and backward.
type product struct {
	transA, transB bool
	m, n, k        int
	lda, ldb       int
	alpha          float32
}

func (pr *product) forward(workers int, a, b, y []float32, epilogue func(i0, i1, j0, j1 int)) {
	pgemm(workers, pr.transA, pr.transB, pr.m, pr.n, pr.k, pr.alpha, a, pr.lda, b, pr.ldb, 0, y, pr.n, epilogue)
}

// backward writes or adds dA and dB (either may be nil) from dY:
//
//	dop(A) = alpha·dY·op(B)ᵀ, so dA is that or, when A is stored transposed,
//	its transpose alpha·op(B)·dYᵀ; likewise dop(B) = alpha·op(A)ᵀ·dY.
//
// The two products have the same cost (m·n·k multiply-adds), so when both
// are wanted and there are two workers each computes one, unsplit: no
// operand is packed twice. after, if not nil, runs once the dB product is
// done (on its goroutine).
func (pr *product) backward(workers int, a, b, dy, da []float32, accA bool, db []float32, accB bool, after func()) {
	m, n, k := pr.m, pr.n, pr.k
	gradA := func(workers int) {
		if !pr.transA {
			pgemm(workers, false, !pr.transB, m, k, n, pr.alpha, dy, n, b, pr.ldb, betaOf(accA), da, pr.lda, nil)
		} else {
			pgemm(workers, pr.transB, true, k, m, n, pr.alpha, b, pr.ldb, dy, n, betaOf(accA), da, pr.lda, nil)
		}
	}
	gradB := func(workers int) {
		if db != nil {
			if !pr.transB {
				pgemm(workers, !pr.transA, false, k, n, m, pr.alpha, a, pr.lda, dy, n, betaOf(accB), db, pr.ldb, nil)
			} else {
				pgemm(workers, true, pr.transA, n, k, m, pr.alpha, dy, n, a, pr.lda, betaOf(accB), db, pr.ldb, nil)
			}
		}
		if after != nil {
			after()
		}
	}
	if da != nil && db != nil && gemmWorkers(workers) >= 2 && m*n*k >= minParallelFlops {
		parallel(2, 2, 1, func(w, _, _ int) {
			if w == 0 {
				gradA(max(1, workers/2))
			} else {
				gradB(max(1, workers-workers/2))
			}
		})
		return
	}
	if da != nil {
		gradA(workers)
	}
	gradB(workers)
}

// denseOp is the linear layer y = x·Wᵀ + b with W [out, in]: one sgemm over
// the whole batch, its rows split across workers.
type denseOp struct {
	opBase
	product
	hasBias bool
}

func (p *plan) newDense(ins []int) (op, []int, error) {
	x, w := p.shape(ins[0]), p.shape(ins[1])
	if len(x) != 2 || len(w) != 2 {
		return nil, nil, fmt.Errorf("dense needs a [batch, features] input and [out, in] weight, got %v and %v", x, w)
	}
	if x[1] != w[1] {
		return nil, nil, fmt.Errorf("input has %d features but the weight expects %d", x[1], w[1])
	}
	d := &denseOp{opBase: opBase{in: ins[:2]}, product: product{transB: true, m: x[0], n: w[0], k: x[1], lda: x[1], ldb: w[1], alpha: 1}}
	if len(ins) > 2 && ins[2] >= 0 {
		if b := p.shape(ins[2]); len(b) != 1 || b[0] != w[0] {
			return nil, nil, fmt.Errorf("dense bias has shape %v, want [%d]", b, w[0])
		}
		d.in = ins[:3]
		d.hasBias = true
	}
	return d, []int{x[0], w[0]}, nil
}

func (*denseOp) setup(*plan) {}

func (d *denseOp) fuseRelu() bool { return true }

func (d *denseOp) forward(r *run) {
	y := r.data(d.out)
	var bias []float32
	if d.hasBias {
		bias = r.data(d.in[2])
	}
	var epilogue func(i0, i1, j0, j1 int)
	if bias != nil || d.relu {
		// Bias and relu on each worker's block of y, while it is in cache.
		epilogue = func(i0, i1, j0, j1 int) {
			for i := i0; i < i1; i++ {
				row := y[i*d.n+j0 : i*d.n+j1]
				if bias != nil {
					addTo(row, bias[j0:j1])
				}
				if d.relu {
					reluForward(row, row)
				}
			}
		}
	}
	d.product.forward(r.p.workers, r.data(d.in[0]), r.data(d.in[1]), y, epilogue)
}

func (d *denseOp) backward(r *run) {
	dy := r.grad(d.out)
	if d.relu {
		y := r.data(d.out)
		parallel(r.p.workers, len(y), elementwiseGrain, func(_, lo, hi int) { maskRelu(y[lo:hi], dy[lo:hi]) })
	}
	var dx, dw []float32
	if d.need[0] {
		dx = r.grad(d.in[0])
	}
	if d.need[1] && r.p.kind != kindPerExample {
		dw = r.grad(d.in[1])
	}
	var biasGrad func()
	// A per-example plan forms the (clipped) weight and bias gradients
	// afterwards, from x and dy (perexample.go).
	if d.hasBias && d.need[2] && r.p.kind != kindPerExample {
		biasGrad = func() {
			db := r.grad(d.in[2])[:d.n]
			if !d.acc[2] {
				clear(db)
			}
			for i := range d.m {
				addTo(db, dy[i*d.n:(i+1)*d.n])
			}
		}
	}
	d.product.backward(r.p.workers, r.data(d.in[0]), r.data(d.in[1]), dy, dx, d.acc[0], dw, d.acc[1], biasGrad)
}

// gemmOp is ONNX Gemm: alpha·op(A)·op(B) + beta·C, C broadcast to [M, N].
// Alpha and Beta are used as given, zero included, as the GoMLX engine does.
type gemmOp struct {
	opBase
	product
	beta float32
	c    *bcast // C against the output, nil without C
}

func (p *plan) newGemm(ins []int, at nn.Attrs) (op, []int, error) {
	a, b := p.shape(ins[0]), p.shape(ins[1])
	if len(a) != 2 || len(b) != 2 {
		return nil, nil, fmt.Errorf("gemm needs 2-D operands, got %v and %v", a, b)
	}
	pr := product{transA: at.TransA, transB: at.TransB, m: a[0], k: a[1], lda: a[1], ldb: b[1], alpha: at.Alpha}
	if at.TransA {
		pr.m, pr.k = a[1], a[0]
	}
	kb, n := b[0], b[1]
	if at.TransB {
		kb, n = b[1], b[0]
	}
	if kb != pr.k {
		return nil, nil, fmt.Errorf("gemm: op(A) is %dx%d but op(B) is %dx%d", pr.m, pr.k, kb, n)
	}
	pr.n = n
	g := &gemmOp{opBase: opBase{in: ins[:2]}, product: pr, beta: at.Beta}
	out := []int{pr.m, n}
	if len(ins) > 2 && ins[2] >= 0 {
		c := p.shape(ins[2])
		bc, shape, err := newBcast(out, c)
		if err != nil {
			return nil, nil, err
		}
		if !slices.Equal(shape, out) {
			return nil, nil, fmt.Errorf("gemm: C of shape %v does not broadcast to [%d %d]", c, pr.m, n)
		}
		g.in = ins[:3]
		g.c = bc
	}
	return g, out, nil
}

func (*gemmOp) setup(*plan) {}

func (g *gemmOp) forward(r *run) {
	y := r.data(g.out)
	g.product.forward(r.p.workers, r.data(g.in[0]), r.data(g.in[1]), y, nil)
	if g.c != nil {
		c := r.data(g.in[2])
		beta := g.beta
		g.c.runs(0, g.c.outer(), func(off, _, offC, n, _, sc int) {
			ys := y[off : off+n]
			for i := range ys {
				ys[i] += beta * c[offC+i*sc]
			}
		})
	}
}

func (g *gemmOp) backward(r *run) {
	dy := r.grad(g.out)
	var da, db []float32
	if g.need[0] {
		da = r.grad(g.in[0])
	}
	if g.need[1] {
		db = r.grad(g.in[1])
	}
	g.product.backward(r.p.workers, r.data(g.in[0]), r.data(g.in[1]), dy, da, g.acc[0], db, g.acc[1], nil)
	if g.c != nil && g.need[2] {
		dc := r.grad(g.in[2])
		if !g.acc[2] {
			clear(dc)
		}
		beta := g.beta
		g.c.runs(0, g.c.outer(), func(off, _, offC, n, _, sc int) {
			for i, v := range dy[off : off+n] {
				dc[offC+i*sc] += beta * v
			}
		})
	}
}

// matMulOp is numpy matmul for 2-D operands and for 3-D ones with a batch
// axis (equal, or 1 / absent on one side, which then broadcasts).
type matMulOp struct {
	opBase
	product
	batch   int
	strideA int // elements between consecutive batch entries of A (0: shared)
	strideB int
}

func (p *plan) newMatMul(ins []int) (op, []int, error) {
	a, b := p.shape(ins[0]), p.shape(ins[1])
	ra, rb := len(a), len(b)
	if ra < 2 || ra > 3 || rb < 2 || rb > 3 {
		return nil, nil, fmt.Errorf("matmul supports 2-D and 3-D operands, got shapes %v and %v", a, b)
	}
	m, k := a[ra-2], a[ra-1]
	kb, n := b[rb-2], b[rb-1]
	if k != kb {
		return nil, nil, fmt.Errorf("matmul: shapes %v and %v do not match (%d vs %d)", a, b, k, kb)
	}
	ba, bb := 1, 1
	if ra == 3 {
		ba = a[0]
	}
	if rb == 3 {
		bb = b[0]
	}
	if ba != bb && ba != 1 && bb != 1 {
		return nil, nil, fmt.Errorf("matmul: batch sizes %d and %d do not broadcast", ba, bb)
	}
	mm := &matMulOp{opBase: opBase{in: ins[:2]}, product: product{m: m, n: n, k: k, lda: k, ldb: n, alpha: 1}, batch: max(ba, bb)}
	if ba > 1 {
		mm.strideA = m * k
	}
	if bb > 1 {
		mm.strideB = k * n
	}
	out := []int{m, n}
	if ra == 3 || rb == 3 {
		out = []int{mm.batch, m, n}
	}
	if mm.strideB == 0 && mm.batch > 1 {
		// A shared B: the batch of A is just more rows of one product.
		mm.m *= mm.batch
		mm.batch, mm.strideA = 1, 0
	}
	return mm, out, nil
}

func (*matMulOp) setup(*plan) {}

func (mm *matMulOp) forward(r *run) {
	a, b, y := r.data(mm.in[0]), r.data(mm.in[1]), r.data(mm.out)
	ys := mm.m * mm.n
	for i := range mm.batch {
		mm.product.forward(r.p.workers, a[i*mm.strideA:], b[i*mm.strideB:], y[i*ys:(i+1)*ys], nil)
	}
}

func (mm *matMulOp) backward(r *run) {
	a, b, dy := r.data(mm.in[0]), r.data(mm.in[1]), r.grad(mm.out)
	var da, db []float32
	if mm.need[0] {
		da = r.grad(mm.in[0])
	}
	if mm.need[1] {
		db = r.grad(mm.in[1])
	}
	ys := mm.m * mm.n
	for i := range mm.batch {
		var dai, dbi []float32
		// A shared operand collects every batch entry's contribution.
		accA, accB := mm.acc[0] || (i > 0 && mm.strideA == 0), mm.acc[1] || (i > 0 && mm.strideB == 0)
		if da != nil {
			dai = da[i*mm.strideA:]
		}
		if db != nil {
			dbi = db[i*mm.strideB:]
		}
		mm.product.backward(r.p.workers, a[i*mm.strideA:], b[i*mm.strideB:], dy[i*ys:(i+1)*ys], dai, accA, dbi, accB, nil)
	}
}
