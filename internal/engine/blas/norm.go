package blas

import (
	"fmt"
	"math"

	"github.com/bulwark-sec/bulwark/nn"
)

// bnOp is batch normalisation over every axis but the channel (axis 1) of a
// rank-2 [B, C] or rank-4 [B, C, H, W] input, viewed as [outer, C, inner].
// In inference it uses the running statistics; in a training plan the
// batch's own (biased variance to normalise, as PyTorch), and it writes the
// updated running statistics, new = m·old + (1-m)·batch with the unbiased
// batch variance, for the trainer to store.
type bnOp struct {
	opBase
	training            bool
	outer, ch, inner    int
	eps, mom            float32
	meanBuf, rstdBuf    int // training: the batch statistics, for backward
	newMeanBuf, newVBuf int // training: the updated running statistics
}

func (p *plan) newBatchNorm(ins []int, a nn.Attrs) (op, []int, error) {
	x := p.shape(ins[0])
	if len(x) != 2 && len(x) != 4 {
		return nil, nil, fmt.Errorf("batch norm needs a rank 2 or 4 input, got %v", x)
	}
	b := &bnOp{opBase: opBase{in: ins}, outer: x[0], ch: x[1], inner: nn.Numel(x[2:]), eps: a.Epsilon, mom: a.Momentum,
		meanBuf: -1, rstdBuf: -1, newMeanBuf: -1, newVBuf: -1}
	if b.eps == 0 {
		b.eps = 1e-5
	}
	if b.mom == 0 {
		b.mom = 0.9
	}
	for i, what := range []string{"scale", "bias", "mean", "variance"} {
		if s := p.shape(ins[i+1]); len(s) != 1 || s[0] != b.ch {
			return nil, nil, fmt.Errorf("batch norm %s has shape %v, want [%d]", what, s, b.ch)
		}
	}
	if p.kind == kindTrain {
		b.training = true
		// The output does not depend on the running statistics.
		b.nodiff = []bool{false, false, false, true, true}
		b.meanBuf, b.rstdBuf = p.newBuf(b.ch), p.newBuf(b.ch)
		b.newMeanBuf, b.newVBuf = p.newBuf(b.ch), p.newBuf(b.ch)
		for j, buf := range []int{b.newMeanBuf, b.newVBuf} {
			if v := p.values[ins[3+j]]; v.where == inParam && !p.g.Params[v.buf].Trainable {
				p.stats = append(p.stats, statUpdate{param: v.buf, buf: buf})
			}
		}
	}
	return b, append([]int(nil), x...), nil
}

func (*bnOp) setup(*plan) {}

// channel calls fn with each contiguous run of channel c.
func (b *bnOp) channel(x []float32, c int, fn func(run []float32, off int)) {
	for o := range b.outer {
		off := (o*b.ch + c) * b.inner
		fn(x[off:off+b.inner], off)
	}
}

func (b *bnOp) forward(r *run) {
	x, y := r.data(b.in[0]), r.data(b.out)
	scale, bias := r.data(b.in[1]), r.data(b.in[2])
	runMean, runVar := r.data(b.in[3]), r.data(b.in[4])
	count := b.outer * b.inner
	parallel(r.p.workers, b.ch, 1, func(_, lo, hi int) {
		for c := lo; c < hi; c++ {
			mean, rstd := runMean[c], float32(1/math.Sqrt(float64(runVar[c]+b.eps)))
			if b.training {
				s := 0.0
				b.channel(x, c, func(run []float32, _ int) {
					for _, v := range run {
						s += float64(v)
					}
				})
				m := s / float64(count)
				ss := 0.0
				b.channel(x, c, func(run []float32, _ int) {
					for _, v := range run {
						d := float64(v) - m
						ss += d * d
					}
				})
				variance := ss / float64(count)
				mean, rstd = float32(m), float32(1/math.Sqrt(variance+float64(b.eps)))
				r.buf(b.meanBuf)[c], r.buf(b.rstdBuf)[c] = mean, rstd
				unbiased := variance
				if count > 1 {
					unbiased = variance * float64(count) / float64(count-1)
				}
				r.buf(b.newMeanBuf)[c] = b.mom*runMean[c] + (1-b.mom)*float32(m)
				r.buf(b.newVBuf)[c] = b.mom*runVar[c] + (1-b.mom)*float32(unbiased)
			}
			k := scale[c] * rstd
			sh := bias[c] - mean*k
			relu := b.relu
			b.channel(x, c, func(run []float32, off int) {
				out := y[off : off+len(run)]
				if relu {
					for i, v := range run {
						out[i] = max(v*k+sh, 0)
					}
					return
				}
				for i, v := range run {
					out[i] = v*k + sh
				}
			})
		}
	})
}

func (b *bnOp) fuseRelu() bool { return true }

func (b *bnOp) backward(r *run) {
	x, y, dy := r.data(b.in[0]), r.data(b.out), r.grad(b.out)
	scale := r.data(b.in[1])
	runMean, runVar := r.data(b.in[3]), r.data(b.in[4])
	count := float32(b.outer * b.inner)
	grad := func(i int) []float32 {
		if b.need[i] {
			return r.grad(b.in[i])
		}
		return nil
	}
	dx, dscale, dbias, dmean, dvar := grad(0), grad(1), grad(2), grad(3), grad(4)
	put := func(g []float32, c int, v float32, acc bool) {
		if g == nil {
			return
		}
		if acc {
			g[c] += v
		} else {
			g[c] = v
		}
	}
	parallel(r.p.workers, b.ch, 1, func(_, lo, hi int) {
		for c := lo; c < hi; c++ {
			mean, rstd := runMean[c], float32(1/math.Sqrt(float64(runVar[c]+b.eps)))
			if b.training {
				mean, rstd = r.buf(b.meanBuf)[c], r.buf(b.rstdBuf)[c]
			}
			// Σdy and Σdy·x̂ over the channel (after the fused relu's mask).
			var sdy, sdyx float64
			b.channel(x, c, func(run []float32, off int) {
				g := dy[off : off+len(run)]
				if b.relu {
					maskRelu(y[off:off+len(run)], g)
				}
				for i, v := range run {
					sdy += float64(g[i])
					sdyx += float64(g[i]) * float64((v-mean)*rstd)
				}
			})
			put(dscale, c, float32(sdyx), b.acc[1])
			put(dbias, c, float32(sdy), b.acc[2])
			k := scale[c] * rstd
			if !b.training {
				put(dmean, c, -float32(sdy)*k, b.acc[3])
				// ∂y/∂var = scale·(x-mean)·(-½)(var+eps)^(-3/2) = -½·k·x̂·rstd.
				put(dvar, c, -0.5*k*rstd*float32(sdyx), b.acc[4])
			}
			if dx == nil {
				continue
			}
			acc := b.acc[0]
			if !b.training {
				b.channel(x, c, func(run []float32, off int) {
					scaleInto(dx[off:off+len(run)], dy[off:off+len(run)], k, acc)
				})
				continue
			}
			// Batch statistics depend on x too:
			// dx = k·(dy - Σdy/M - x̂·Σdy·x̂/M).
			mdy, mdyx := float32(sdy)/count, float32(sdyx)/count
			b.channel(x, c, func(run []float32, off int) {
				g, d := dy[off:off+len(run)], dx[off:off+len(run)]
				for i, v := range run {
					xh := (v - mean) * rstd
					t := k * (g[i] - mdy - xh*mdyx)
					if acc {
						t += d[i]
					}
					d[i] = t
				}
			})
		}
	})
}
