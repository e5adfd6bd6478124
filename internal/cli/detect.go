package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/attack"
	"github.com/bulwark-sec/bulwark/data"
	"github.com/bulwark-sec/bulwark/defense/detect"
	"github.com/bulwark-sec/bulwark/defense/preprocess"
	"github.com/bulwark-sec/bulwark/internal/progress"
)

func newDetectCmd(g *globals) *cobra.Command {
	var af attackFlags
	var tf targetFlags
	var sf sampleFlags
	var squeezers []string
	var fpr float64
	var asJSON bool
	c := &cobra.Command{
		Use:   "detect",
		Short: "Evaluate the feature-squeezing adversarial-input detector on a model",
		Long: `detect fits the feature-squeezing detector (Xu, Evans, Qi, NDSS 2018) to a
model and measures it. The --n examples are split in two: the first half
(clean) sets the detector's threshold at the false-positive rate --fpr; on
the second half, the command runs the attack and reports the detection rate
on the adversarial examples that fool the model, the false-positive rate on
the same clean examples, and the ROC AUC of the scores.

The score of an input is the largest L1 distance between the model's
softmax on it and on a squeezed copy (--squeezers; default: Xu et al.'s
1-bit depth and 2x2 median for one-channel images, 5-bit depth and 2x2
median otherwise). The rates hold only against attacks that ignore the
detector: an attacker who knows it can keep the squeezed predictions
together and evade it.`,
		Example: `  bulwark detect --model fm-cnn.safetensors --data fashion-mnist --attack pgd --eps 0.1 --n 1000 --json
  bulwark detect --model fm-cnn.safetensors --data fashion-mnist --squeezers bitdepth:4 --fpr 0.05 --attack fgsm --eps 0.1`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			bad := func(format string, a ...any) error {
				return &ExitError{Code: ExitInput, Err: fmt.Errorf(format, a...)}
			}
			if af.name == "" {
				return bad("--attack is required: the attack whose examples the detector should catch (one of %s)", strings.Join(attack.ShortNames(), ", "))
			}
			if !(fpr > 0 && fpr < 1) {
				return bad("--fpr %g: want a false-positive rate in (0, 1)", fpr)
			}
			if tf.defense != "" {
				return bad("--defense: detect evaluates a detector, not an input transformation")
			}
			p, err := af.params(c)
			if err != nil {
				return bad("%w", err)
			}
			a, err := attack.New(af.name, p)
			if err != nil {
				return bad("%w", err)
			}
			ot, err := tf.open(c.Context(), g)
			if err != nil {
				return err
			}
			if !ot.target.Capabilities().Scores {
				return bad("%s gives labels only; the detector compares probabilities", tf.model)
			}
			if missing := ot.target.Capabilities().Missing(a.Requires()); missing != "" {
				return bad("%s needs %s, which %s does not give", a.Name(), missing, tf.model)
			}
			var sq []preprocess.Preprocessor
			for _, s := range squeezers {
				pp, err := preprocess.Parse(s, ot.target.Lo, ot.target.Hi, 0)
				if err != nil {
					return bad("--squeezers: %w", err)
				}
				if _, random := pp.(preprocess.Randomised); random {
					return bad("--squeezers %s: a squeezer must be deterministic", s)
				}
				sq = append(sq, pp)
			}
			if len(sq) == 0 {
				sq = detect.DefaultSqueezers(ot.target.InputShape(), ot.target.Lo, ot.target.Hi)
			}
			sel, err := sf.load(ot.target, tf.model)
			if err != nil {
				return err
			}
			d := sel.set
			if d.Len() < 4 {
				return bad("--n %d: the detector needs at least 4 examples (half to fit, half to judge)", d.Len())
			}
			half := d.Len() / 2
			fit, held := d.Subset(seq(0, half)), d.Subset(seq(half, d.Len()))
			ctx := c.Context()
			det, err := detect.FitSqueezers(ctx, ot.target, sq, fit.X, fit.Len(), fpr)
			if err != nil {
				return err
			}
			bar := progress.New("attacking", 1, g.quiet || asJSON)
			bar.Set(0, fmt.Sprintf("%s on %d examples", a.Name(), held.Len()))
			res, err := attack.Execute(ctx, a, ot.target, held.X, held.Y, held.Len())
			bar.Done()
			if err != nil {
				return err
			}
			adv, nAdv := brokenExamples(res, held)
			if nAdv == 0 {
				return &ExitError{Code: ExitPolicy, Err: fmt.Errorf("%s broke none of the %d examples: there is nothing to detect (raise --eps)", a.Name(), held.Len())}
			}
			ev, err := detect.Evaluate(ctx, det, adv, nAdv, held.X, held.Len())
			if err != nil {
				return err
			}
			var names []string
			for _, s := range sq {
				names = append(names, preprocess.Spec(s))
			}
			out := map[string]any{
				"model": tf.model, "data": d.Name, "split": d.Split, "detector": "feature-squeezing", "squeezers": names,
				"target_fpr": fpr, "fit_fpr": det.FitFPR, "threshold": det.Threshold, "n_fit": fit.Len(),
				"attack": res.Attack, "params": res.Params, "attack_success_rate": res.SuccessRate,
				"n_adv": ev.NAdv, "n_clean": ev.NClean, "detection_rate": ev.DetectionRate, "fpr": ev.FPR, "auc": ev.AUC,
				"adaptive": false,
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), out)
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "feature squeezing (%s) on %s, threshold %.4g set on %d clean examples at FPR %g\n",
				strings.Join(names, ", "), tf.model, det.Threshold, fit.Len(), fpr)
			fmt.Fprintf(w, "%s broke %d of %d held-out examples\n", res.Attack, ev.NAdv, held.Len())
			fmt.Fprintf(w, "detection rate %.3f   false-positive rate %.3f (%d clean)   AUC %.3f\n", ev.DetectionRate, ev.FPR, ev.NClean, ev.AUC)
			fmt.Fprintln(w, "(against an attack that ignores the detector; an adaptive attack can evade it)")
			return nil
		},
	}
	af.addFlags(c)
	tf.addFlags(c)
	sf.addFlags(c, 1000, "use the first N examples: half to fit the threshold, half to judge (0: all)")
	f := c.Flags()
	f.StringSliceVar(&squeezers, "squeezers", nil, "squeezers, comma-separated: bitdepth:B, median:K (default: Xu et al.'s for the input kind)")
	f.Float64Var(&fpr, "fpr", detect.DefaultFPR, "false-positive rate the threshold is set to on the fitting half")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}

// brokenExamples returns the adversarial examples of r that fool the model.
func brokenExamples(r *attack.Result, d *data.Dataset) ([]float32, int) {
	size := len(d.X) / d.Len()
	var out []float32
	n := 0
	for i := range r.N {
		if r.Broken[i] {
			out = append(out, r.Adv[i*size:(i+1)*size]...)
			n++
		}
	}
	return out, n
}

func seq(lo, hi int) []int {
	s := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		s = append(s, i)
	}
	return s
}
