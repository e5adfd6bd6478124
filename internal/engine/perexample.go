package engine

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
)

// PerExampleGradients returns, for each trainable parameter, the gradient of
// every example's own loss: n blocks of the parameter's size, example-major.
//
// GoMLX has no vmap, so this uses the batch trick (Goodfellow 2015): one
// backward pass gives d(sum of losses)/dz for the output z of every dense and
// convolution product; row i of that only depends on example i, and the
// weight gradient of example i is the outer product of that row with the
// layer's input (summed over positions for a convolution). The cost is one
// backward pass plus one batched product per layer, instead of n passes.
//
// Only weights and biases of dense and conv layers are supported: batch norm
// in training mode mixes examples, so its per-example gradients are not
// defined; models that need them (DP-SGD) use architectures without it.
func (m *Model) PerExampleGradients(x []float32, labels []int, n int) (map[string][]float32, error) {
	if err := m.checkBatch(x, n); err != nil {
		return nil, err
	}
	g := m.graph
	train := g.Trainable()
	be, err := getBackend()
	if err != nil {
		return nil, err
	}
	np := len(g.Params)
	var order []string
	e, err := NewExec(be, func(in []*Node) []*Node {
		b := newBuilder(g, inference)
		b.taps = map[int]*tap{}
		logits := b.forward(in[0], in[2:2+np])
		losses := crossEntropy(logits, in[1])
		covered := map[int]bool{}
		var taps []*tap
		var weights []int
		var pres []*Node
		for wi, tp := range b.taps {
			taps = append(taps, tp)
			weights = append(weights, wi)
			pres = append(pres, tp.pre)
			covered[wi] = true
			if tp.biasIdx >= 0 {
				covered[tp.biasIdx] = true
			}
		}
		for _, i := range train {
			if !covered[i] {
				panic(fmt.Errorf("parameter %q is not the weight or bias of a dense or conv layer; per-example gradients are not defined for it", g.Params[i].Name))
			}
		}
		gz := Gradient(ReduceAllSum(losses), pres...)
		var outs []*Node
		order = order[:0]
		for j, tp := range taps {
			// [B, P, O] x [B, P, K] -> [B, O, K]
			gzj := Reshape(gz[j], n, tp.p, -1)
			dw := DotGeneral(gzj, []int{1}, []int{0}, tp.cols, []int{1}, []int{0})
			if tp.conv {
				o, c, kh, kw := tp.kshape[0], tp.kshape[1], tp.kshape[2], tp.kshape[3]
				// Columns are ordered (i, j, c); the weight is [O, C, kh, kw].
				dw = TransposeAllAxes(Reshape(dw, n, o, kh, kw, c), 0, 1, 4, 2, 3)
			}
			outs = append(outs, dw)
			order = append(order, g.Params[weights[j]].Name)
			if tp.biasIdx >= 0 {
				outs = append(outs, ReduceSum(gzj, 1))
				order = append(order, g.Params[tp.biasIdx].Name)
			}
		}
		return outs
	})
	if err != nil {
		return nil, err
	}
	defer e.Finalize()
	args := append([]any{tensors.FromFlatDataAndDimensions(x, inputShape(g, n).Dimensions...), labelTensor(labels)}, m.paramArgs()...)
	res, err := e.Exec(args...)
	if err != nil {
		return nil, cleanError(err)
	}
	defer finalize(res)
	out := map[string][]float32{}
	for j, t := range res {
		d, err := tensors.CopyFlatData[float32](t)
		if err != nil {
			return nil, err
		}
		out[order[j]] = d
	}
	return out, nil
}
