package classifier

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/bulwark-sec/bulwark/llm/corpus"
)

// nLabels is the number of classes: benign, injection, jailbreak.
const nLabels = 3

// Context says where a text comes from, and so which head reads it.
type Context int

const (
	// Prompt is a message typed by the application's user: instructions
	// are expected; overriding the application's own, or a jailbreak,
	// is not.
	Prompt Context = iota
	// Document is third-party content the application reads (a retrieved
	// page, an email, a tool result): any instruction to the assistant in
	// it is suspect ("Translate your answer into Spanish" included).
	Document
)

func (c Context) String() string {
	if c == Document {
		return "document"
	}
	return "prompt"
}

// ParseContext reads "prompt" or "document".
func ParseContext(s string) (Context, error) {
	switch s {
	case "prompt":
		return Prompt, nil
	case "document":
		return Document, nil
	}
	return 0, fmt.Errorf("context %q: want prompt or document", s)
}

// ContextOf is the context of a record's kind: document and indirect
// records are documents, everything else a prompt.
func ContextOf(kind string) Context {
	if kind == "document" || kind == "indirect" {
		return Document
	}
	return Prompt
}

// Model is the classifier's pair of heads, one per context. They differ
// in what they were trained on (see Train), not in form.
type Model struct {
	Prompt, Document *Head
}

// Head returns the head for a context.
func (m *Model) Head(c Context) *Head {
	if c == Document {
		return m.Document
	}
	return m.Prompt
}

// Head is a multinomial logistic regression over the hashed features.
type Head struct {
	// W holds the weights, bucket-major: W[b*nLabels+c] is bucket b's weight
	// for label c (the three weights of a bucket share a cache line).
	W    []float32
	Bias [nLabels]float32
	// Threshold is the attack probability (1 − p(benign)) at and above
	// which a text is flagged; chosen on a validation part of the
	// training data.
	Threshold float64
	Info      TrainInfo
}

// TrainInfo records how a model was made.
type TrainInfo struct {
	Records    int            `json:"records"`
	Validation int            `json:"validation"`
	Labels     map[string]int `json:"labels"`
	Epochs     int            `json:"epochs"`
	Seed       uint64         `json:"seed"`
	Data       string         `json:"data"` // SHA-256 of the training texts and labels
	// Validation figures at the chosen threshold.
	ValRecall float64 `json:"val_recall"`
	ValFPR    float64 `json:"val_fpr"`
}

// logits returns the class scores of v.
func (m *Head) logits(v vector) [nLabels]float64 {
	var z [nLabels]float64
	for c := range z {
		z[c] = float64(m.Bias[c])
	}
	for i, b := range v.idx {
		w := m.W[int(b)*nLabels : int(b)*nLabels+nLabels]
		x := float64(v.val[i])
		z[0] += x * float64(w[0])
		z[1] += x * float64(w[1])
		z[2] += x * float64(w[2])
	}
	return z
}

// probs is the softmax of the logits of v.
func (m *Head) probs(v vector) [nLabels]float64 {
	z := m.logits(v)
	mx := math.Max(z[0], math.Max(z[1], z[2]))
	var p [nLabels]float64
	var s float64
	for c := range z {
		p[c] = math.Exp(z[c] - mx)
		s += p[c]
	}
	for c := range p {
		p[c] /= s
	}
	return p
}

// The file format: gzip of the magic line, a little-endian uint32 header
// length, a JSON header, and the weights of the prompt head and then the
// document head as int8, bucket-major, each label scaled by its own
// factor. Eight bits per weight keep the embedded model near a megabyte;
// the labels it gives agree with the float weights' (TestQuantizedAgrees).
const magic = "bulwark-prompt-classifier v2\n"

type header struct {
	Dim      int          `json:"dim"`
	Labels   []string     `json:"labels"`
	Features string       `json:"features"`
	Heads    []headHeader `json:"heads"` // prompt, document
}

type headHeader struct {
	Scale     [nLabels]float32 `json:"scale"`
	Bias      [nLabels]float32 `json:"bias"`
	Threshold float64          `json:"threshold"`
	Info      TrainInfo        `json:"info"`
}

// features names the feature scheme; a model made for another is refused.
const featureScheme = "fnv1a char3-5 word1-2 signed log-tf l2 (min 64), chunks 200"

// Marshal writes the model in the file format.
func (m *Model) Marshal() ([]byte, error) {
	h := header{Dim: Dim, Labels: corpus.Labels, Features: featureScheme}
	heads := []*Head{m.Prompt, m.Document}
	for _, hd := range heads {
		hh := headHeader{Bias: hd.Bias, Threshold: hd.Threshold, Info: hd.Info}
		for c := range nLabels {
			var mx float32
			for b := range Dim {
				mx = max(mx, float32(math.Abs(float64(hd.W[b*nLabels+c]))))
			}
			hh.Scale[c] = mx / 127
			if mx == 0 {
				hh.Scale[c] = 1
			}
		}
		h.Heads = append(h.Heads, hh)
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var raw bytes.Buffer
	raw.WriteString(magic)
	binary.Write(&raw, binary.LittleEndian, uint32(len(hj)))
	raw.Write(hj)
	for k, hd := range heads {
		q := make([]byte, len(hd.W))
		for i, w := range hd.W {
			q[i] = byte(int8(math.Round(float64(w / h.Heads[k].Scale[i%nLabels]))))
		}
		raw.Write(q)
	}
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Unmarshal reads a model file; name is used in errors.
func Unmarshal(b []byte, name string) (*Model, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: not a bulwark prompt-classifier model: %s", name, fmt.Sprintf(format, a...))
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, bad("%v", err)
	}
	// The uncompressed size is known exactly; reading one byte more than
	// it finds trailing data and bounds a decompression bomb.
	const maxHeader = 1 << 16
	const weights = 2 * Dim * nLabels
	raw, err := io.ReadAll(io.LimitReader(zr, int64(len(magic)+4+maxHeader+weights+1)))
	if err != nil {
		return nil, bad("%v", err)
	}
	if len(raw) < len(magic)+4 || string(raw[:len(magic)]) != magic {
		return nil, bad("wrong magic")
	}
	n := binary.LittleEndian.Uint32(raw[len(magic):])
	rest := raw[len(magic)+4:]
	if n > maxHeader || int(n) > len(rest) {
		return nil, bad("header length %d", n)
	}
	var h header
	if err := json.Unmarshal(rest[:n], &h); err != nil {
		return nil, bad("header: %v", err)
	}
	switch {
	case h.Dim != Dim:
		return nil, bad("%d feature buckets, this build uses %d", h.Dim, Dim)
	case h.Features != featureScheme:
		return nil, bad("feature scheme %q, this build uses %q", h.Features, featureScheme)
	case len(h.Labels) != nLabels || h.Labels[0] != corpus.Benign || h.Labels[1] != corpus.Injection || h.Labels[2] != corpus.Jailbreak:
		return nil, bad("labels %q", h.Labels)
	case len(h.Heads) != 2:
		return nil, bad("%d heads, want 2 (prompt, document)", len(h.Heads))
	}
	q := rest[n:]
	if len(q) != weights {
		return nil, bad("%d weight bytes, want %d", len(q), weights)
	}
	var heads [2]*Head
	for k, hh := range h.Heads {
		if !(hh.Threshold > 0 && hh.Threshold < 1) {
			return nil, bad("threshold %g outside (0, 1)", hh.Threshold)
		}
		for c := range nLabels {
			if !finite(hh.Scale[c]) || hh.Scale[c] <= 0 || !finite(hh.Bias[c]) {
				return nil, bad("scale or bias of label %d is not a finite number", c)
			}
		}
		hd := &Head{W: make([]float32, Dim*nLabels), Bias: hh.Bias, Threshold: hh.Threshold, Info: hh.Info}
		for i, v := range q[k*Dim*nLabels : (k+1)*Dim*nLabels] {
			hd.W[i] = float32(int8(v)) * hh.Scale[i%nLabels]
		}
		heads[k] = hd
	}
	return &Model{Prompt: heads[0], Document: heads[1]}, nil
}

func finite(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }
