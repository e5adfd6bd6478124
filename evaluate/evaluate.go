// Package evaluate measures a classifier on a dataset: accuracy, loss,
// per-class precision and recall, the confusion matrix and the expected
// calibration error.
package evaluate

import (
	"context"
	"fmt"
	"math"

	"github.com/bulwark-sec/bulwark/data"
	"github.com/bulwark-sec/bulwark/internal/engine"
)

// ECEBins is the number of equal-width confidence bins of the expected
// calibration error (15, as in Guo et al. 2017 and most reports since).
const ECEBins = 15

// ClassMetrics are the one-vs-rest figures of one class.
type ClassMetrics struct {
	Class     string  `json:"class"`
	Support   int     `json:"support"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// Result is everything evaluate measures.
type Result struct {
	N         int            `json:"n"`
	Accuracy  float64        `json:"accuracy"`
	Loss      float64        `json:"loss"` // mean cross-entropy
	ECE       float64        `json:"ece"`
	PerClass  []ClassMetrics `json:"per_class"`
	Confusion [][]int        `json:"confusion"` // [true][predicted]
}

// BatchSize is how many examples go to the engine at once.
const BatchSize = 256

// Run evaluates net on d. If probabilities is true the model's outputs are
// already probabilities (an ONNX export ending in softmax) and are used as
// they are instead of through a softmax. progress, if not nil, is called
// with the number of examples done.
func Run(ctx context.Context, net engine.Net, d *data.Dataset, classes []string, probabilities bool, progress func(done int)) (*Result, error) {
	k := net.NumClasses()
	if d.Len() == 0 {
		return nil, fmt.Errorf("dataset %s is empty", d.Name)
	}
	for i, y := range d.Y {
		if y < 0 || y >= k {
			return nil, fmt.Errorf("example %d of %s has label %d, but the model has only %d classes", i, d.Name, y, k)
		}
	}
	r := &Result{N: d.Len(), Confusion: make([][]int, k)}
	for i := range r.Confusion {
		r.Confusion[i] = make([]int, k)
	}
	var binConf, binAcc [ECEBins]float64
	var binN [ECEBins]int
	size := net.InputSize()
	lossSum := 0.0
	for lo := 0; lo < d.Len(); lo += BatchSize {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(d.Len(), lo+BatchSize)
		out, err := net.Logits(d.X[lo*size:hi*size], hi-lo)
		if err != nil {
			return nil, err
		}
		for i := lo; i < hi; i++ {
			p := Probabilities(out[(i-lo)*k:(i-lo+1)*k], probabilities)
			y := d.Y[i]
			pred := argmax(p)
			r.Confusion[y][pred]++
			lossSum += -math.Log(math.Max(p[y], 1e-12))
			conf := p[pred]
			b := min(int(conf*ECEBins), ECEBins-1)
			binN[b]++
			binConf[b] += conf
			if pred == y {
				binAcc[b]++
			}
		}
		if progress != nil {
			progress(hi)
		}
	}
	correct := 0
	for c := 0; c < k; c++ {
		correct += r.Confusion[c][c]
	}
	r.Accuracy = float64(correct) / float64(r.N)
	r.Loss = lossSum / float64(r.N)
	for b := range binN {
		if binN[b] > 0 {
			r.ECE += math.Abs(binAcc[b]-binConf[b]) / float64(r.N)
		}
	}
	for c := 0; c < k; c++ {
		tp, support, predicted := r.Confusion[c][c], 0, 0
		for j := 0; j < k; j++ {
			support += r.Confusion[c][j]
			predicted += r.Confusion[j][c]
		}
		m := ClassMetrics{Class: fmt.Sprint(c), Support: support}
		if c < len(classes) {
			m.Class = classes[c]
		}
		if predicted > 0 {
			m.Precision = float64(tp) / float64(predicted)
		}
		if support > 0 {
			m.Recall = float64(tp) / float64(support)
		}
		if m.Precision+m.Recall > 0 {
			m.F1 = 2 * m.Precision * m.Recall / (m.Precision + m.Recall)
		}
		r.PerClass = append(r.PerClass, m)
	}
	return r, nil
}

// Probabilities turns one row of model outputs into probabilities with a
// numerically stable softmax, or normalises them if they already are.
func Probabilities(row []float32, already bool) []float64 {
	p := make([]float64, len(row))
	if already {
		s := 0.0
		for i, v := range row {
			p[i] = math.Max(float64(v), 0)
			s += p[i]
		}
		if s > 0 {
			for i := range p {
				p[i] /= s
			}
		}
		return p
	}
	mx := math.Inf(-1)
	for _, v := range row {
		mx = math.Max(mx, float64(v))
	}
	s := 0.0
	for i, v := range row {
		p[i] = math.Exp(float64(v) - mx)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
	return p
}

func argmax(p []float64) int {
	best := 0
	for i, v := range p {
		if v > p[best] {
			best = i
		}
	}
	return best
}
