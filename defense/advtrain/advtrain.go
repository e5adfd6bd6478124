// Package advtrain is adversarial training as a train.BatchDefense: every
// training batch is replaced by adversarial examples crafted on the model
// being trained, so the optimiser minimises the loss at the worst point of
// the threat model's ball instead of at the clean input (the saddle-point
// problem of Madry et al. 2018).
//
// Kinds:
//
//   - "pgd-at": Madry et al., "Towards Deep Learning Models Resistant to
//     Adversarial Attacks", ICLR 2018. PGD from a random start, no early
//     stopping: the model trains on the final iterate.
//   - "fast-at": Wong, Rice & Kolter, "Fast is better than free: Revisiting
//     adversarial training", ICLR 2020. One FGSM step of 1.25·eps from a
//     uniform random start in the L∞ ball, then projected onto the ball.
//   - "trades": Zhang et al., "Theoretically Principled Trade-off between
//     Robustness and Accuracy", ICML 2019: clean cross-entropy plus β times
//     the KL divergence between the clean and the adversarial predictions,
//     the adversarial example maximising the KL term (trades.go). L∞ only.
//
// The adversarial examples come from the attack registry's evasion.pgd
// (fast-at is its one-step case), so training and assessment share one
// implementation, and its name and version are recorded with the model.
package advtrain

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/bulwark-sec/bulwark/attack"
	_ "github.com/bulwark-sec/bulwark/attack/evasion" // registers evasion.pgd
	"github.com/bulwark-sec/bulwark/train"
)

// Kinds lists the adversarial training methods New accepts.
var Kinds = []string{"pgd-at", "trades", "fast-at"}

// version changes whenever what a defense of this package does to a batch
// changes; it is recorded with the model.
const version = 1

// Params configure adversarial training. Zero values mean the defaults.
type Params struct {
	// Eps is the radius of the threat model's ball; required.
	Eps float64 `json:"eps"`
	// Norm is the threat model's norm: L∞ (default), or for pgd-at also L2
	// and L1. fast-at is L∞ only, as in Wong et al.
	Norm attack.Norm `json:"norm,omitempty"`
	// Steps of PGD: default 10 for pgd-at; fast-at takes exactly 1.
	Steps int `json:"steps,omitempty"`
	// StepSize at full eps: default 2.5·eps/steps for pgd-at (Madry et
	// al.'s rule of thumb, as for the pgd attack), 1.25·eps for fast-at
	// (Wong et al., Section 4). During warm-up it shrinks with eps.
	StepSize float64 `json:"step_size,omitempty"`
	// CleanFraction of every batch is left clean (pgd-at only): 0, the
	// default, is Madry et al.'s pure adversarial training; 0.5 is the
	// half-and-half batches of Kurakin et al., "Adversarial Machine
	// Learning at Scale", ICLR 2017.
	CleanFraction float64 `json:"clean_fraction,omitempty"`
	// WarmupFraction of the run grows eps linearly from 0 to Eps (and the
	// step size with it), measured by Transform's progress. Default 0, as
	// in Madry et al. and Wong et al.; see New for when to set it.
	WarmupFraction float64 `json:"warmup_fraction,omitempty"`
	// Beta weighs TRADES's robustness (KL) term against its clean
	// cross-entropy: default 6, the value Zhang et al. report for MNIST and
	// CIFAR-10; larger trades clean accuracy for robustness.
	Beta float64 `json:"beta,omitempty"`
	// Seed keys the random starts and the choice of clean examples.
	Seed uint64 `json:"seed"`
}

// New returns the adversarial training defense kind with parameters p,
// defaults filled in.
//
// Warm-up (WarmupFraction) is off by default because neither Madry et al.
// nor Wong et al. use it. Ramping eps up from 0 is the schedule of
// certified training (Wong et al., "Scaling provable adversarial
// defenses", NeurIPS 2018; Gowal et al., "On the Effectiveness of Interval
// Bound Propagation", 2018) and of curriculum adversarial training (Cai et
// al., IJCAI 2018); it helps small models and short runs that pure
// adversarial training from a random initialisation leaves stuck near
// chance accuracy.
func New(kind string, p Params) (train.BatchDefense, error) {
	kind = strings.ToLower(strings.TrimSpace(kind))
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	p.Norm = attack.Or(p.Norm, attack.Linf)
	switch {
	case kind != "pgd-at" && kind != "fast-at" && kind != "trades":
		return nil, fmt.Errorf("unknown adversarial training %q (one of %s)", kind, strings.Join(Kinds, ", "))
	case bad(p.Eps) || p.Eps <= 0:
		return nil, fmt.Errorf("%s: eps must be a finite number > 0, not %v", kind, p.Eps)
	case p.Norm == attack.Linf && p.Eps > 1:
		return nil, fmt.Errorf("%s: an L∞ eps of %v is larger than the whole [0, 1] input range", kind, p.Eps)
	case p.Steps < 0:
		return nil, fmt.Errorf("%s: steps must be at least 1, not %d", kind, p.Steps)
	case bad(p.StepSize) || p.StepSize < 0:
		return nil, fmt.Errorf("%s: step size must be a finite number > 0 (or 0 for the default), not %v", kind, p.StepSize)
	case bad(p.WarmupFraction) || p.WarmupFraction < 0 || p.WarmupFraction >= 1:
		return nil, fmt.Errorf("%s: warm-up fraction must be in [0, 1), not %v", kind, p.WarmupFraction)
	case bad(p.CleanFraction) || p.CleanFraction < 0 || p.CleanFraction >= 1:
		return nil, fmt.Errorf("%s: clean fraction must be in [0, 1), not %v", kind, p.CleanFraction)
	case bad(p.Beta) || p.Beta < 0:
		return nil, fmt.Errorf("%s: beta must be a finite number > 0, not %v", kind, p.Beta)
	case p.Beta != 0 && kind != "trades":
		return nil, fmt.Errorf("beta is TRADES's weight; %s has none", kind)
	}
	if kind == "trades" {
		switch {
		case p.Norm != attack.Linf:
			return nil, fmt.Errorf("trades is L∞ only here (as in Zhang et al. 2019), not L%s; use pgd-at", p.Norm)
		case p.CleanFraction > 0:
			return nil, errors.New("trades always has a clean term (its cross-entropy); a clean fraction is for pgd-at")
		}
		p.Beta = attack.Or(p.Beta, 6)
	}
	if kind == "fast-at" {
		switch {
		case p.Norm != attack.Linf:
			return nil, fmt.Errorf("fast-at is L∞ only (Wong et al. 2020), not L%s; use pgd-at", p.Norm)
		case p.Steps > 1:
			return nil, fmt.Errorf("fast-at takes one FGSM step, not %d; use pgd-at for more", p.Steps)
		case p.CleanFraction > 0:
			return nil, errors.New("fast-at trains on adversarial examples only (Wong et al. 2020); a clean fraction needs pgd-at")
		}
		p.Steps = 1
		p.StepSize = attack.Or(p.StepSize, 1.25*p.Eps)
	} else {
		p.Steps = attack.Or(p.Steps, 10)
		p.StepSize = attack.Or(p.StepSize, 2.5*p.Eps/float64(p.Steps))
	}
	d := &defense{kind: kind, p: p}
	// Build the attack once at full eps: it validates what is left (the
	// norm, an L1 eps) and gives the name and version to record.
	a, err := d.attack(p.Eps, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	d.attackName, d.attackVersion = a.Name(), a.Version()
	if kind == "trades" {
		return &trades{defense: d, beta: p.Beta}, nil
	}
	return d, nil
}
