package classifier

import (
	"slices"
	"time"

	"github.com/bulwark-sec/bulwark/llm/corpus"
)

// Metrics are a classifier's figures on labelled records. An attack counts
// as detected when its label is not benign, whichever attack label it got.
type Metrics struct {
	N          int `json:"n"`
	Attacks    int `json:"attacks"`
	Benign     int `json:"benign"`
	Detected   int `json:"detected"`
	FalseAlarm int `json:"false_positives"`

	Recall            float64            `json:"recall"`            // detected attacks / attacks
	RecallByLabel     map[string]float64 `json:"recall_by_label"`   // injection, jailbreak
	FPR               float64            `json:"fpr"`               // flagged benign / benign
	FPRByKind         map[string]float64 `json:"fpr_by_kind"`       // prompt, document, ...
	Precision         float64            `json:"precision"`         // detected / flagged
	BalancedAccuracy  float64            `json:"balanced_accuracy"` // (recall + 1 − FPR) / 2, as PINT scores
	LabelAgreement    float64            `json:"label_agreement"`   // detected attacks given their own label
	LatencyP50Micros  float64            `json:"latency_p50_us"`    // per text, one core
	LatencyP99Micros  float64            `json:"latency_p99_us"`    //
	FalsePositives    []string           `json:"false_positive_texts,omitempty"`
	MissedAttacks     []string           `json:"missed_texts,omitempty"`
	countsByLabel     map[string][2]int  // detected, total
	countsBenignKinds map[string][2]int  // flagged, total
}

// examplesKept bounds the texts Metrics quotes.
const examplesKept = 20

// Evaluate classifies recs, one at a time (latency is per text), each in
// the context of its kind (ContextOf), and scores the verdicts against
// their labels.
func Evaluate(c *Classifier, recs []corpus.Record) Metrics {
	m := Metrics{countsByLabel: map[string][2]int{}, countsBenignKinds: map[string][2]int{}}
	lat := make([]float64, 0, len(recs))
	agree := 0
	for _, r := range recs {
		t0 := time.Now()
		res := c.ClassifyAs(r.Text, ContextOf(r.Kind))
		lat = append(lat, float64(time.Since(t0).Nanoseconds())/1e3)
		flagged := res.Label != corpus.Benign
		m.N++
		if r.IsAttack() {
			m.Attacks++
			k := m.countsByLabel[r.Label]
			k[1]++
			if flagged {
				k[0]++
				m.Detected++
				if res.Label == r.Label {
					agree++
				}
			} else if len(m.MissedAttacks) < examplesKept {
				m.MissedAttacks = append(m.MissedAttacks, clip(r.Text))
			}
			m.countsByLabel[r.Label] = k
			continue
		}
		m.Benign++
		kind := r.Kind
		if kind == "" {
			kind = "unspecified"
		}
		k := m.countsBenignKinds[kind]
		k[1]++
		if flagged {
			k[0]++
			m.FalseAlarm++
			if len(m.FalsePositives) < examplesKept {
				m.FalsePositives = append(m.FalsePositives, clip(r.Text))
			}
		}
		m.countsBenignKinds[kind] = k
	}
	ratio := func(a, b int) float64 {
		if b == 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
	m.Recall = ratio(m.Detected, m.Attacks)
	m.FPR = ratio(m.FalseAlarm, m.Benign)
	m.Precision = ratio(m.Detected, m.Detected+m.FalseAlarm)
	m.BalancedAccuracy = (m.Recall + 1 - m.FPR) / 2
	m.LabelAgreement = ratio(agree, m.Detected)
	m.RecallByLabel = map[string]float64{}
	for l, k := range m.countsByLabel {
		m.RecallByLabel[l] = ratio(k[0], k[1])
	}
	m.FPRByKind = map[string]float64{}
	for l, k := range m.countsBenignKinds {
		m.FPRByKind[l] = ratio(k[0], k[1])
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		m.LatencyP50Micros = lat[len(lat)/2]
		m.LatencyP99Micros = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return m
}

// clip shortens a quoted text.
func clip(s string) string {
	r := []rune(s)
	if len(r) > 160 {
		return string(r[:160]) + "…"
	}
	return s
}
