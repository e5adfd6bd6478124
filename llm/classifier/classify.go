// Package classifier tells prompt injections and jailbreaks from benign
// prompts and documents, in microseconds and with no external model.
//
// A text is normalised first (package textnorm: invisible characters,
// smuggled tag text, homoglyphs, full-width letters, leetspeak, base64, hex
// and rot13 are undone), and every resulting segment is read by two
// judges: a logistic regression over hashed character and word n-grams,
// read in chunks of about 200 characters with one head per context
// (prompt or document; trained in Go by Train, the default model embedded
// in the binary), and a handful of rules that name techniques outright.
// The text is flagged when the most attack-like chunk reaches the head's
// threshold or a rule fires; the score is the highest attack probability
// either gives, and the label the attack label of the judge that decided.
package classifier

import (
	"fmt"
	"sync"
	"unicode"

	"github.com/bulwark-sec/bulwark/llm/corpus"
	"github.com/bulwark-sec/bulwark/llm/textnorm"
)

// Classifier classifies texts; safe for concurrent use.
type Classifier struct {
	m    *Model
	pool sync.Pool
}

// New returns a classifier using m.
func New(m *Model) *Classifier {
	return &Classifier{m: m, pool: sync.Pool{New: func() any { return new(extractor) }}}
}

// Model returns the classifier's model.
func (c *Classifier) Model() *Model { return c.m }

// Result is the verdict on one text.
type Result struct {
	Label   string  `json:"label"` // benign, injection or jailbreak
	Context string  `json:"context"`
	Score   float64 `json:"score"` // attack probability in [0, 1]
	// Scores are the model's class probabilities on the segment that set
	// Score (or on the text, when a rule set it).
	Scores  map[string]float64 `json:"scores"`
	Reasons []string           `json:"reasons"`
	Rules   []string           `json:"rules,omitempty"`
	// Normalization reports what textnorm undid.
	Normalization textnorm.Result `json:"normalization"`
}

// segmentNames label the segments of a textnorm.Result in reasons.
func segmentNames(r *textnorm.Result) []string {
	n := []string{"text"}
	if r.Folded != "" {
		n = append(n, "text with leetspeak folded")
	}
	if r.Hidden != "" {
		n = append(n, "text hidden in tag characters")
	}
	for _, d := range r.Decoded {
		n = append(n, "decoded "+d.Encoding)
	}
	return n
}

// Classify classifies a text typed by the user (the Prompt context).
func (c *Classifier) Classify(text string) Result { return c.ClassifyAs(text, Prompt) }

// ClassifyAs classifies a text from the given context, with that
// context's head.
func (c *Classifier) ClassifyAs(text string, ctx Context) Result {
	e := c.pool.Get().(*extractor)
	defer c.pool.Put(e)
	nr := textnorm.Normalize(text)
	segs, names := nr.Segments(), segmentNames(&nr)

	// The score is the most attack-like chunk's. The leetspeak folding and
	// decodings repeat most chunks of a long text unchanged; each is read
	// once. A chunk with no features (only encoded runs that normalisation
	// took out) is no evidence either way.
	h := c.m.Head(ctx)
	best, bestP, bestSeg := 0.0, [nLabels]float64{1, 0, 0}, "text"
	seen := map[string]bool{}
	modelSegs := segs
	if !enoughText(segs) {
		modelSegs = nil // rules only: see MinModelRunes
	}
	for i, s := range modelSegs {
		for _, w := range chunks(s) {
			if seen[w] {
				continue
			}
			seen[w] = true
			v := e.view(w)
			if len(v.idx) == 0 {
				continue
			}
			if q := h.probs(v); 1-q[0] > best {
				best, bestP, bestSeg = 1-q[0], q, names[i]
			}
		}
	}
	flagged := best >= h.Threshold
	res := Result{Score: best, Context: ctx.String(), Normalization: nr, Reasons: []string{}}
	res.Scores = map[string]float64{corpus.Benign: bestP[0], corpus.Injection: bestP[1], corpus.Jailbreak: bestP[2]}
	label := corpus.Injection
	if bestP[2] > bestP[1] {
		label = corpus.Jailbreak
	}
	if flagged {
		res.Reasons = append(res.Reasons, fmt.Sprintf("model (%s head): attack probability %.3f on the %s", ctx, best, bestSeg))
	}

	var fired []rule
	if nr.Hidden != "" {
		fired = append(fired, hiddenRule)
	}
	for i, s := range segs {
		ls := lower(s)
		for _, r := range rules {
			if !hasRule(fired, r.ID) && r.match(ls) {
				r.Reason += " (in the " + names[i] + ")"
				fired = append(fired, r)
			}
		}
	}
	// A rule flags the text whatever the model says.
	for _, r := range fired {
		res.Rules = append(res.Rules, r.ID)
		res.Reasons = append(res.Reasons, "rule "+r.ID+": "+r.Reason)
		if !flagged || r.Score > res.Score {
			res.Score, label = max(res.Score, r.Score), r.Label
		}
		flagged = true
	}

	if nr.Invisible > 0 {
		res.Reasons = append(res.Reasons, fmt.Sprintf("%d invisible characters removed", nr.Invisible))
	}
	if nr.Homoglyphs > 0 {
		res.Reasons = append(res.Reasons, fmt.Sprintf("%d look-alike letters folded to Latin", nr.Homoglyphs))
	}
	if nr.InvalidUTF > 0 {
		res.Reasons = append(res.Reasons, fmt.Sprintf("%d bytes of invalid UTF-8 replaced", nr.InvalidUTF))
	}
	res.Label = corpus.Benign
	if flagged {
		res.Label = label
	}
	return res
}

// MinModelRunes is the fewest letters and digits a text needs for the
// model's verdict to count. On "hi" or "thanks" it has a handful of
// n-grams to go on, and the data's attacks (jailbreaks opening "Hi
// ChatGPT") outweigh its benign prompts (templated questions) on them: it
// flagged such greetings. Shorter texts are judged by the rules alone;
// an attack needs more words than this to say anything the rules miss.
const MinModelRunes = 16

func enoughText(segs []string) bool {
	n := 0
	for _, s := range segs {
		for _, r := range s {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				n++
				if n >= MinModelRunes {
					return true
				}
			}
		}
	}
	return false
}

func hasRule(rs []rule, id string) bool {
	for _, r := range rs {
		if r.ID == id {
			return true
		}
	}
	return false
}
