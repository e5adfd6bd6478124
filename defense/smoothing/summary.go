package smoothing

import "fmt"

// DefaultRadii are the L2 radii certified accuracy is reported at.
var DefaultRadii = []float64{0, 0.25, 0.5, 0.75, 1}

// Summary condenses certificates against the true labels, as the paper's
// tables do.
type Summary struct {
	N     int       `json:"n"`
	Radii []float64 `json:"radii"`
	// CertifiedAccuracy[j] is the fraction of inputs CERTIFY labels
	// correctly with radius at least Radii[j] (abstentions count as wrong).
	CertifiedAccuracy []float64 `json:"certified_accuracy"`
	// AbstainRate is the fraction where CERTIFY abstained.
	AbstainRate float64 `json:"abstain_rate"`
	// CleanAccuracy is the smoothed classifier's accuracy: PREDICT's
	// answers (Certificate.Smoothed), abstentions counted as wrong.
	CleanAccuracy float64 `json:"clean_accuracy"`
	// MeanRadius is the average certified radius, 0 for wrong or abstained
	// inputs (the "ACR" later papers report).
	MeanRadius float64 `json:"mean_radius"`
}

// Summarize scores certs against labels at the given radii (nil: the
// defaults).
func Summarize(certs []Certificate, labels []int, radii []float64) (Summary, error) {
	if len(certs) != len(labels) {
		return Summary{}, fmt.Errorf("smoothing: %d certificates for %d labels", len(certs), len(labels))
	}
	if radii == nil {
		radii = DefaultRadii
	}
	s := Summary{N: len(certs), Radii: radii, CertifiedAccuracy: make([]float64, len(radii))}
	if len(certs) == 0 {
		return s, nil
	}
	// Count, then divide once: summing 1/n gives 0.8860000000000007.
	n := float64(len(certs))
	abstain, clean := 0, 0
	certified := make([]int, len(radii))
	var radiusSum float64
	for i, c := range certs {
		if c.Prediction < 0 {
			abstain++
		}
		if c.Smoothed == labels[i] {
			clean++
		}
		if c.Prediction != labels[i] {
			continue
		}
		radiusSum += c.Radius
		for j, r := range radii {
			if c.Radius >= r {
				certified[j]++
			}
		}
	}
	s.AbstainRate, s.CleanAccuracy, s.MeanRadius = float64(abstain)/n, float64(clean)/n, radiusSum/n
	for j, k := range certified {
		s.CertifiedAccuracy[j] = float64(k) / n
	}
	return s, nil
}
