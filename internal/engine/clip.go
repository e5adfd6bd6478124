package engine

import (
	"fmt"
	"math"

	"github.com/bulwark-sec/bulwark/nn"
)

// Per-example gradient clipping for DP-SGD (Abadi et al. 2016, "Deep
// Learning with Differential Privacy"): every example's gradient g_i is
// scaled by c_i = min(1, C/‖g_i‖) before the batch is summed, which bounds
// any one example's influence on the sum by C.

// Clipped is the result of ClippedGradientSum for a batch.
type Clipped struct {
	// Sum is Σ_i c_i·∇θ L_i for every trainable parameter, by name.
	Sum map[string][]float32
	// Norms is each example's whole gradient norm ‖∇θ L_i‖ before clipping
	// (also with per-layer clipping).
	Norms []float64
	// Losses and Correct describe the batch before any update: each
	// example's cross-entropy and how many were classified right.
	Losses  []float32
	Correct int
}

// Clipper is a Net with its own ClippedGradientSum. Both engines have one:
// the blas engine computes the norms without materialising per-example
// dense gradients (internal/engine/blas/perexample.go); the GoMLX engine
// materialises them with PerExampleGradients.
type Clipper interface {
	ClippedGradientSum(x []float32, labels []int, n int, clip float64, perLayer bool) (*Clipped, error)
}

// ClippedGradientSum returns the sum over n examples of each example's
// cross-entropy gradient clipped to norm clip (inference-mode forward
// pass). With perLayer, each layer's part of the gradient (ClipLayers) is
// clipped to clip/√L on its own, L the number of layers, so the whole
// gradient still has norm at most clip. Nets without a method of their own
// use PerExampleGradients.
func ClippedGradientSum(n Net, x []float32, labels []int, count int, clip float64, perLayer bool) (*Clipped, error) {
	if c, ok := n.(Clipper); ok {
		return c.ClippedGradientSum(x, labels, count, clip, perLayer)
	}
	return clipByMaterialising(n, x, labels, count, clip, perLayer)
}

// ClipLayer is one unit of per-layer clipping: a node and its trainable
// parameters (a dense or conv layer's weight and bias).
type ClipLayer struct {
	Node   int   // index into Graph.Nodes
	Params []int // indices into Graph.Params, in input order
}

// ClipLayers lists the layers of g that have trainable parameters, in
// graph order, and checks that per-example gradients are defined: every
// trainable parameter must be the weight or bias of exactly one dense or
// conv node, and there must be no batch norm, which mixes the examples of a
// batch (Opacus refuses it for the same reason).
func ClipLayers(g *nn.Graph) ([]ClipLayer, error) {
	idx := map[string]int{}
	for i, p := range g.Params {
		idx[p.Name] = i
	}
	used := map[int]string{}
	var layers []ClipLayer
	for j, nd := range g.Nodes {
		name := nd.Name
		if name == "" {
			name = nd.Output
		}
		if nd.Op == nn.OpBatchNorm {
			return nil, fmt.Errorf("node %q is a batch norm (%s), which mixes the examples of a batch: per-example gradients, and so DP-SGD, are not defined for it; use an architecture without batch norm", name, nd.Op)
		}
		l := ClipLayer{Node: j}
		for k, in := range nd.Inputs {
			i, ok := idx[in]
			if !ok || !g.Params[i].Trainable {
				continue
			}
			if (nd.Op != nn.OpDense && nd.Op != nn.OpConv) || (k != 1 && k != 2) {
				return nil, fmt.Errorf("trainable parameter %q is input %d of node %q (%s): per-example gradients are only defined for the weights and biases of dense and conv layers", in, k, name, nd.Op)
			}
			if prev, dup := used[i]; dup {
				return nil, fmt.Errorf("trainable parameter %q is shared by nodes %q and %q: per-example gradients of shared parameters are not supported", in, prev, name)
			}
			used[i] = name
			l.Params = append(l.Params, i)
		}
		if len(l.Params) > 0 {
			layers = append(layers, l)
		}
	}
	return layers, nil
}

// clipStabiliser keeps a zero gradient's scale finite, as Opacus does.
const clipStabiliser = 1e-6

// ClipScales turns squared per-example norms sq[layer][example] into the
// scales c[layer][example] that clip each example to clip: flat clipping
// scales all layers of example i by min(1, clip/‖g_i‖), per-layer clipping
// scales layer l by min(1, (clip/√L)/‖g_il‖). It also returns the whole
// norms ‖g_i‖. Both engines use it, so they clip identically.
func ClipScales(sq [][]float64, clip float64, perLayer bool) (scales [][]float64, norms []float64) {
	if len(sq) == 0 {
		return nil, nil
	}
	n := len(sq[0])
	norms = make([]float64, n)
	for _, l := range sq {
		for i, v := range l {
			norms[i] += v
		}
	}
	for i := range norms {
		norms[i] = math.Sqrt(norms[i])
	}
	scales = make([][]float64, len(sq))
	per := clip / math.Sqrt(float64(len(sq)))
	for l := range sq {
		scales[l] = make([]float64, n)
		for i := range n {
			if perLayer {
				scales[l][i] = min(1, per/(math.Sqrt(sq[l][i])+clipStabiliser))
			} else {
				scales[l][i] = min(1, clip/(norms[i]+clipStabiliser))
			}
		}
	}
	return scales, norms
}

// CheckClip validates ClippedGradientSum's arguments.
func CheckClip(size int, x []float32, labels []int, n, classes int, clip float64) error {
	if n <= 0 {
		return fmt.Errorf("batch of %d examples", n)
	}
	if len(x) != n*size || len(labels) != n {
		return fmt.Errorf("%d values and %d labels for %d examples of size %d", len(x), len(labels), n, size)
	}
	for i, y := range labels {
		if y < 0 || y >= classes {
			return fmt.Errorf("label %d of example %d is outside the model's %d classes", y, i, classes)
		}
	}
	if !(clip > 0) || math.IsInf(clip, 0) {
		return fmt.Errorf("clipping norm must be positive and finite, got %g", clip)
	}
	return nil
}

// clipChunk bounds the examples whose gradients are materialised at once.
const clipChunk = 32

// clipByMaterialising is ClippedGradientSum from PerExampleGradients: the
// reference, and the GoMLX engine's path.
func clipByMaterialising(net Net, x []float32, labels []int, n int, clip float64, perLayer bool) (*Clipped, error) {
	g := net.Graph()
	size := net.InputSize()
	if err := CheckClip(size, x, labels, n, net.NumClasses(), clip); err != nil {
		return nil, err
	}
	layers, err := ClipLayers(g)
	if err != nil {
		return nil, err
	}
	res := &Clipped{Sum: map[string][]float32{}, Losses: make([]float32, n)}
	for _, i := range g.Trainable() {
		res.Sum[g.Params[i].Name] = make([]float32, g.Params[i].Size())
	}
	logits, err := net.Logits(x, n)
	if err != nil {
		return nil, err
	}
	res.Correct = crossEntropyLosses(logits, labels, res.Losses)
	for lo := 0; lo < n; lo += clipChunk {
		hi := min(n, lo+clipChunk)
		k := hi - lo
		per, err := PerExampleGradients(net, x[lo*size:hi*size], labels[lo:hi], k)
		if err != nil {
			return nil, err
		}
		sq := make([][]float64, len(layers))
		for l, ly := range layers {
			sq[l] = make([]float64, k)
			for _, pi := range ly.Params {
				p := g.Params[pi]
				d, sz := per[p.Name], p.Size()
				for i := range k {
					for _, v := range d[i*sz : (i+1)*sz] {
						sq[l][i] += float64(v) * float64(v)
					}
				}
			}
		}
		scales, norms := ClipScales(sq, clip, perLayer)
		res.Norms = append(res.Norms, norms...)
		for l, ly := range layers {
			for _, pi := range ly.Params {
				p := g.Params[pi]
				d, sz, sum := per[p.Name], p.Size(), res.Sum[p.Name]
				for i := range k {
					c := float32(scales[l][i])
					for j, v := range d[i*sz : (i+1)*sz] {
						sum[j] += c * v
					}
				}
			}
		}
	}
	return res, nil
}

// crossEntropyLosses writes each example's softmax cross-entropy (in
// float64) and returns how many rows have their label as the first maximum.
func crossEntropyLosses(logits []float32, labels []int, losses []float32) int {
	k := len(logits) / len(labels)
	correct := 0
	for i, y := range labels {
		row := logits[i*k : (i+1)*k]
		mx, best := float64(row[0]), 0
		for j, v := range row {
			if float64(v) > mx {
				mx, best = float64(v), j
			}
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(float64(v) - mx)
		}
		losses[i] = float32(mx + math.Log(s) - float64(row[y]))
		if best == y {
			correct++
		}
	}
	return correct
}

// ClippedGradientSum on the GoMLX engine materialises the per-example
// gradients (the batch trick of PerExampleGradients) in chunks.
func (m *Model) ClippedGradientSum(x []float32, labels []int, n int, clip float64, perLayer bool) (*Clipped, error) {
	return clipByMaterialising(m, x, labels, n, clip, perLayer)
}
