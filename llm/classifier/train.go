package classifier

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/bulwark-sec/bulwark/llm/corpus"
	"github.com/bulwark-sec/bulwark/llm/textnorm"
)

// TrainOptions are the training settings. The zero value is the default.
type TrainOptions struct {
	Epochs int     // passes over the data (default 8)
	LR     float64 // AdaGrad step (default 0.5)
	L2     float64 // weight decay per update on the touched weights (default 1e-4)
	Seed   uint64  // shuffling
	// MILGate is the attack probability the most attack-like chunk of a
	// long attack must reach to be trained on as the attack (default 0.5).
	MILGate float64
	// MaxFPR caps the validation false-positive rate when a threshold is
	// chosen (default 0.01).
	MaxFPR float64
}

func (o *TrainOptions) defaults() {
	if o.Epochs == 0 {
		o.Epochs = 8
	}
	if o.LR == 0 {
		o.LR = 0.5
	}
	if o.L2 == 0 {
		o.L2 = 1e-4
	}
	if o.MILGate == 0 {
		o.MILGate = 0.5
	}
	if o.MaxFPR == 0 {
		o.MaxFPR = 0.01
	}

}

// ValidationPercent of the training records choose the threshold and are
// not trained on.
const ValidationPercent = 10

// Train fits a model to labelled records. The records are the training
// part only: hold out evaluation data before calling (corpus.Split).
//
// The prompt head learns from the prompt records (benign prompts, direct
// attacks, and records without a kind); the document head from all of
// them, documents and attacks planted in documents included, because an
// attack typed by a user is an attack pasted into a document too, while
// "Translate the following into German", an attack when a web page says
// it, is an ordinary request when the user does.
//
// (A document head trained on documents alone, with documents read by both
// heads, was tried: with a few hundred benign documents its threshold,
// chosen on a few dozen, did not hold, and half the held-out benign
// documents were flagged.)
func Train(recs []corpus.Record, o TrainOptions) (*Model, error) {
	var prompts []corpus.Record
	for _, r := range recs {
		if ContextOf(r.Kind) == Prompt {
			prompts = append(prompts, r)
		}
	}
	p, err := trainHead(prompts, o)
	if err != nil {
		return nil, fmt.Errorf("prompt head: %w", err)
	}
	d, err := trainHead(recs, o)
	if err != nil {
		return nil, fmt.Errorf("document head: %w", err)
	}
	return &Model{Prompt: p, Document: d}, nil
}

// trainHead trains a head on recs.
func trainHead(recs []corpus.Record, o TrainOptions) (*Head, error) {
	o.defaults()
	if o.Epochs < 0 || o.LR < 0 || o.L2 < 0 || o.MaxFPR < 0 || o.MaxFPR >= 1 {
		return nil, errors.New("epochs, learning rate, L2 and max FPR must be non-negative (max FPR below 1)")
	}
	type example struct {
		chunks []vector // the pieces of the normalised text
		y      int
		w      float64
		doc    bool // a document or an attack planted in one
	}
	var train, val []example
	info := TrainInfo{Labels: map[string]int{}, Epochs: o.Epochs, Seed: o.Seed}
	fp := sha256.New()
	var e extractor
	for _, r := range recs {
		y := labelIndex(r.Label)
		if y < 0 {
			return nil, fmt.Errorf("record with label %q", r.Label)
		}
		fp.Write([]byte(r.Label + "\x00" + r.Text + "\x00"))
		ex := example{y: y, doc: ContextOf(r.Kind) == Document}
		for _, c := range chunks(textnorm.Normalize(r.Text).Text) {
			if v := e.features(c); len(v.idx) > 0 {
				ex.chunks = append(ex.chunks, v)
			}
		}
		if len(ex.chunks) == 0 {
			continue // nothing to learn from (Classify scores such texts 0)
		}
		h := fnv.New32a()
		h.Write([]byte("validation\x00" + r.Text))
		if h.Sum32()%100 < ValidationPercent {
			val = append(val, ex)
		} else {
			train = append(train, ex)
			info.Labels[r.Label]++
		}
	}
	info.Records, info.Validation = len(train), len(val)
	info.Data = hex.EncodeToString(fp.Sum(nil))
	nb := info.Labels[corpus.Benign]
	na := len(train) - nb
	if nb == 0 || na == 0 {
		return nil, fmt.Errorf("training needs benign and attack records; have %d benign, %d attacks", nb, na)
	}

	// The model reads texts in chunks and a text's score is its most
	// attack-like chunk's, so training is multiple-instance learning: every
	// chunk of a benign text is a benign example, and of an attack's chunks
	// the one the current model finds most attack-like is the attack
	// example. The first epoch trains on the attacks of one chunk only:
	// with no model yet to pick the planted sentence out of a long
	// document, any choice would teach the model that the rest of the
	// document (a table, an email) is the attack.
	//
	// Each cell of (benign or attack) × (typed prompt or document) gets the
	// same total weight. Balancing benign against attacks alone is not
	// enough: a poisoned document is a benign document with a sentence
	// added, and if attack documents outweigh benign ones the model learns
	// that documents as such are attacks. Records without a kind count as
	// prompts; a missing cell leaves its weight to the others.
	cellOf := func(ex *example) int {
		c := 0
		if ex.y != 0 {
			c = 2
		}
		if ex.doc {
			c++
		}
		return c
	}
	var cells [4]float64 // examples per cell (benign texts count each chunk)
	for i := range train {
		if train[i].y == 0 {
			cells[cellOf(&train[i])] += float64(len(train[i].chunks))
		} else {
			cells[cellOf(&train[i])]++
		}
	}
	present := 0.0
	for _, n := range cells {
		if n > 0 {
			present++
		}
	}
	for i := range train {
		train[i].w = 1 / (present * cells[cellOf(&train[i])])
	}
	// Benign and attack sides each keep half the weight even when one side
	// lacks a cell.
	var wb, wa float64
	for _, ex := range train {
		if ex.y == 0 {
			wb += ex.w * float64(len(ex.chunks))
		} else {
			wa += ex.w
		}
	}
	nInst := cells[0] + cells[1] + cells[2] + cells[3]
	for i := range train {
		if train[i].y == 0 {
			train[i].w *= nInst / (2 * wb)
		} else {
			train[i].w *= nInst / (2 * wa)
		}
	}

	m := &Head{W: make([]float32, Dim*nLabels)}
	g2 := make([]float32, Dim*nLabels) // AdaGrad's sums of squared gradients
	var bias [nLabels]float64
	var bg2 [nLabels]float64
	step := func(v vector, y int, w float64) {
		for c := range nLabels {
			m.Bias[c] = float32(bias[c])
		}
		p := m.probs(v)
		for c := range nLabels {
			// d loss / d logit_c for weighted cross-entropy.
			g := w * (p[c] - b2f(c == y))
			bg2[c] += g * g
			bias[c] -= o.LR * g / (math.Sqrt(bg2[c]) + 1e-8)
			for i, b := range v.idx {
				j := int(b)*nLabels + c
				gw := g*float64(v.val[i]) + o.L2*float64(m.W[j])
				g2[j] += float32(gw * gw)
				m.W[j] -= float32(o.LR * gw / (math.Sqrt(float64(g2[j])) + 1e-8))
			}
		}
	}
	avg := make([]float32, len(m.W))
	var avgBias [nLabels]float64
	nAvg := 0
	type inst struct{ ex, chunk int }
	var order []inst
	rng := rand.New(rand.NewPCG(o.Seed, 0x6c6c6d))
	for epoch := range o.Epochs {
		order = order[:0]
		for i := range train {
			ex := &train[i]
			switch {
			case ex.y == 0:
				for k := range ex.chunks {
					order = append(order, inst{i, k})
				}
			case epoch == 0:
				if len(ex.chunks) == 1 {
					order = append(order, inst{i, 0})
				}
			default:
				// A document in which no chunk looks like an attack yet is
				// left out this epoch rather than teaching the model that
				// its most attack-like benign part is one.
				if k := argmaxAttack(m, ex.chunks); len(ex.chunks) == 1 || 1-m.probs(ex.chunks[k])[0] >= o.MILGate {
					order = append(order, inst{i, k})
				}
			}
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, in := range order {
			ex := &train[in.ex]
			step(ex.chunks[in.chunk], ex.y, ex.w)
		}
		if epoch >= o.Epochs/2 {
			for j, w := range m.W {
				avg[j] += w
			}
			for c := range nLabels {
				avgBias[c] += bias[c]
			}
			nAvg++
		}
	}
	// The model is the average of the weights at the ends of the second
	// half of the epochs: the choice of chunks feeds back into training,
	// and single runs of it differed by several points of validation
	// recall from one shuffling seed to the next; the average varies less.
	for j := range m.W {
		m.W[j] = avg[j] / float32(nAvg)
	}
	for c := range nLabels {
		m.Bias[c] = float32(avgBias[c] / float64(nAvg))
	}

	// The threshold: the one with the best balanced accuracy on the
	// validation records among those whose false-positive rate there is
	// at most MaxFPR. (Choosing the document head's on the validation
	// documents alone was tried: a few dozen benign documents do not pin
	// a 1% rate down.)
	var benign, attack []float64
	for _, ex := range val {
		a := 1 - m.probs(ex.chunks[argmaxAttack(m, ex.chunks)])[0] // as Classify scores it
		if ex.y == 0 {
			benign = append(benign, a)
		} else {
			attack = append(attack, a)
		}
	}
	m.Threshold = 0.5
	if len(benign) > 0 && len(attack) > 0 {
		bestBA := -1.0
		for _, t := range thresholds() {
			fpr, rec := rate(benign, t), rate(attack, t)
			if fpr > o.MaxFPR {
				continue
			}
			if ba := (rec + 1 - fpr) / 2; ba > bestBA+1e-12 {
				bestBA, m.Threshold = ba, t
				info.ValRecall, info.ValFPR = rec, fpr
			}
		}
		if bestBA < 0 {
			m.Threshold = 0.999
			info.ValRecall, info.ValFPR = rate(attack, m.Threshold), rate(benign, m.Threshold)
		}
	}
	m.Info = info
	return m, nil
}

// rate is the share of scores at or above t.
func rate(scores []float64, t float64) float64 {
	n := 0
	for _, s := range scores {
		if s >= t {
			n++
		}
	}
	return float64(n) / float64(len(scores))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func labelIndex(l string) int {
	for i, k := range corpus.Labels {
		if k == l {
			return i
		}
	}
	return -1
}

// argmaxAttack is the index of the chunk with the highest attack
// probability.
func argmaxAttack(m *Head, vs []vector) int {
	best, bi := -1.0, 0
	for i, v := range vs {
		if a := 1 - m.probs(v)[0]; a > best {
			best, bi = a, i
		}
	}
	return bi
}

// thresholds are the candidates: 0.05 to 0.95 by 0.01, then 0.955 to 0.999
// more finely, where an overconfident model's benign scores sit.
func thresholds() []float64 {
	var t []float64
	for i := 5; i <= 95; i++ {
		t = append(t, float64(i)/100)
	}
	for i := 955; i <= 999; i += 5 {
		t = append(t, float64(i)/1000)
	}
	return t
}
