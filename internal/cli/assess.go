package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/assess"
	"github.com/bulwark-sec/bulwark/defense/smoothing"
	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/internal/progress"
	"github.com/bulwark-sec/bulwark/internal/version"
	"github.com/bulwark-sec/bulwark/model"
	"github.com/bulwark-sec/bulwark/policy"
	"github.com/bulwark-sec/bulwark/report"
)

func newAssessCmd(g *globals) *cobra.Command {
	var tf targetFlags
	var sf sampleFlags
	var profileName, out, policyPath string
	var formats []string
	var seed uint64
	var seconds float64
	var listProfiles bool
	var compare string
	c := &cobra.Command{
		Use:   "assess",
		Short: "Run a robustness assessment (a profile of attacks over an eps grid) and write reports",
		Long: `assess runs every check of a profile (attacks at each eps of a grid) on the
first --n examples of a dataset split, with sanity checks that catch
evaluations fooled by the model, and writes report.json, report.html,
report.sarif and report.md to --out. Robust accuracy is the per-example
worst case over the attacks run. Built-in profiles: quick, standard,
thorough, blackbox (for endpoints); or give a YAML file (schema:
assess/profile.schema.json).

With --policy, the report becomes a gate: exit code 1 when a rule fails,
0 when all hold. Ctrl-C stops cleanly and writes a report marked partial.`,
		Example: `  bulwark assess --model fm-cnn.safetensors --data fashion-mnist --profile standard --out report/ --policy policy.yaml
  bulwark assess --model model.onnx --data fashion-mnist --profile quick --n 200 --out quick/
  bulwark assess --list-profiles`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if listProfiles {
				for _, name := range assess.Builtins() {
					p, _, err := assess.LoadProfile(name)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.OutOrStdout(), "%-10s %s\n", name, strings.Join(strings.Fields(p.Description), " "))
				}
				return nil
			}
			prof, raw, err := assess.LoadProfile(profileName)
			if err != nil {
				return &ExitError{Code: ExitInput, Err: err}
			}
			if seconds < 0 {
				return &ExitError{Code: ExitInput, Err: fmt.Errorf("--time-budget cannot be negative")}
			}
			if seconds > 0 {
				prof.Budget.Seconds = seconds
			}
			if tf.budget > 0 {
				prof.Budget.Queries = tf.budget
				tf.budget = 0 // the runner applies it
			}
			var pol *policy.Policy
			if policyPath != "" {
				if pol, err = policy.Load(policyPath); err != nil {
					return &ExitError{Code: ExitInput, Err: err}
				}
			}
			for _, f := range formats {
				if !contains(report.Formats(), f) {
					return &ExitError{Code: ExitInput, Err: fmt.Errorf("--format %q: want some of %s", f, strings.Join(report.Formats(), ", "))}
				}
			}
			if out == "" {
				return &ExitError{Code: ExitInput, Err: fmt.Errorf("--out is required: the folder for the reports")}
			}
			if !c.Flags().Changed("n") && prof.N > 0 {
				sf.n = prof.N
			}
			if compare != "" && isURL(compare) {
				return &ExitError{Code: ExitInput, Err: fmt.Errorf("--compare takes a model file")}
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return &ExitError{Code: ExitInput, Err: fmt.Errorf("creating %s: %w", out, err)}
			}
			r, sel, err := assessModel(c, g, tf, sf, prof, raw, seed, nil)
			if err != nil {
				return err
			}
			if compare != "" {
				ctf := tf
				ctf.model = compare
				cr, _, err := assessModel(c, g, ctf, sf, prof, raw, seed, sel)
				if err != nil {
					return fmt.Errorf("--compare %s: %w", compare, err)
				}
				sub := "compare-" + strings.TrimSuffix(filepath.Base(compare), filepath.Ext(compare))
				if err := report.Write(filepath.Join(out, sub), cr, formats); err != nil {
					return fmt.Errorf("writing the report of %s: %w", compare, err)
				}
				cs := summarise(cr, compare)
				cs.Report = sub + "/report.html"
				r.Comparison = []report.ModelSummary{summarise(r, tf.model), cs}
				for i, rep := range []*report.Report{r, cr} {
					if err := certifySummary(c, g, rep, sel, &r.Comparison[i]); err != nil {
						return err
					}
				}
				if cr.Status == "partial" && r.Status != "partial" {
					r.Status, r.PartialReason = "partial", "the compared model's run: "+cr.PartialReason
				}
			}
			if pol != nil {
				r.Policy = policy.Evaluate(pol, r)
				r.Policy.File = policyPath
			}
			if err := report.Write(out, r, formats); err != nil {
				return fmt.Errorf("writing the reports: %w", err)
			}
			w := c.OutOrStdout()
			report.Table(w, r)
			var written []string
			for _, f := range formats {
				written = append(written, filepath.Join(out, "report."+f))
			}
			fmt.Fprintf(w, "\nwrote %s\n", strings.Join(written, ", "))
			if r.Status == "partial" {
				fmt.Fprintf(c.ErrOrStderr(), "bulwark: the assessment is partial: %s\n", r.PartialReason)
			}
			if r.Policy != nil && !r.Policy.Pass {
				return &ExitError{Code: ExitPolicy, Err: fmt.Errorf("policy %s failed", policyPath)}
			}
			if r.Status == "partial" && c.Context().Err() != nil {
				return &ExitError{Code: ExitPolicy, Err: fmt.Errorf("interrupted; the partial report is in %s", out)}
			}
			return nil
		},
	}
	tf.addFlags(c)
	sf.addFlags(c, 0, "evaluate the first N examples (default: the profile's n)")
	f := c.Flags()
	f.StringVar(&profileName, "profile", "standard", "built-in profile (quick, standard, thorough, blackbox) or a YAML file")
	f.BoolVar(&listProfiles, "list-profiles", false, "list the built-in profiles and exit")
	f.StringVar(&out, "out", "", "folder for the reports")
	f.StringSliceVar(&formats, "format", []string{"json", "html", "sarif", "md"}, "report formats to write")
	f.StringVar(&policyPath, "policy", "", "policy file (YAML rules); exit 1 when a rule fails")
	f.Uint64Var(&seed, "seed", 1, "random seed of every attack")
	f.StringVar(&compare, "compare", "", "a second model file assessed the same way and shown side by side (e.g. a hardened version)")
	f.Float64Var(&seconds, "time-budget", 0, "stop after this many seconds and write a partial report (0: the profile's budget)")
	return c
}

// assessModel runs the profile on one model. With sel given (a comparison)
// the same examples are used.
func assessModel(c *cobra.Command, g *globals, tf targetFlags, sf sampleFlags, prof *assess.Profile, raw []byte, seed uint64, sel *selection) (*report.Report, *selection, error) {
	ot, err := tf.open(c.Context(), g)
	if err != nil {
		return nil, nil, err
	}
	if sel == nil {
		if sel, err = sf.load(ot.target, tf.model); err != nil {
			return nil, nil, err
		}
	} else if numel(sel.set.Shape) != ot.target.InputSize() || sel.set.NumClasses() > ot.target.Classes() {
		return nil, nil, &ExitError{Code: ExitInput, Err: fmt.Errorf("%s takes inputs of shape %v and %d classes, which do not fit %s", tf.model, ot.target.InputShape(), ot.target.Classes(), sel.set.Name)}
	}
	d := sel.set
	rep := &report.Report{
		Tool:    report.Tool{Name: "bulwark", Version: version.Version, Engine: engineName(ot), GoVersion: runtime.Version()},
		Command: commandLine,
		Target: report.Target{Path: ot.path, Format: ot.format, SHA256: ot.sha256, Classes: ot.target.Classes(),
			ClassNames: ot.classNames, InputShape: ot.target.InputShape(), ThreatModel: ot.target.Capabilities().String(),
			Outputs: outputsKind(ot), Defense: ot.defense},
		Dataset: report.Dataset{Name: d.Name, Split: d.Split, Fingerprint: d.Fingerprint, Size: sel.size, N: d.Len(),
			SampleSeed: sel.seed, Indices: sel.indices},
	}
	if len(rep.Target.ClassNames) == 0 && len(d.Classes) == ot.target.Classes() {
		rep.Target.ClassNames = d.Classes
	}
	bar := progress.New("assessing "+filepath.Base(tf.model), 1, g.quiet)
	r, err := assess.Run(c.Context(), assess.Config{
		Profile: prof, ProfileRaw: raw, Target: ot.target, X: d.X, Labels: d.Y, N: d.Len(), Shape: d.Shape,
		Report: rep, Seed: seed, Bare: ot.bare, Randomised: ot.randomised,
		Progress: func(done, total int, what string) {
			bar.SetTotal(total)
			bar.Set(done, what)
		},
	})
	bar.Done()
	if err != nil {
		return nil, nil, &ExitError{Code: ExitInput, Err: err}
	}
	if ot.model != nil {
		modelMeta[r] = ot.model.Meta.Provenance
		modelNet[r] = ot.model.Net
	}
	return r, sel, nil
}

// modelMeta remembers each assessed model's provenance for summarise, and
// modelNet its network for certifySummary.
var (
	modelMeta = map[*report.Report]model.Provenance{}
	modelNet  = map[*report.Report]engine.Net{}
)

// Certification settings of a comparison: fewer examples and samples than
// `bulwark certify` (100,000 per example), so that a comparison of cnn
// models stays within minutes. With 2,000 samples and α = 0.001 the largest
// radius that can be certified is σ·Φ⁻¹(0.001^(1/2000)) ≈ 2.7σ.
const (
	compareCertExamples = 100
	compareCertSamples  = 2000
)

// certifySummary certifies a model trained with Gaussian noise
// augmentation (randomized smoothing at its training σ) on the first
// assessed examples, for its line in a comparison.
func certifySummary(c *cobra.Command, g *globals, r *report.Report, sel *selection, s *report.ModelSummary) error {
	sigma, ok := smoothing.TrainedSigma(modelMeta[r])
	net := modelNet[r]
	if !ok || net == nil {
		return nil
	}
	d := sel.set.Head(compareCertExamples)
	cfg := smoothing.Config{Sigma: sigma, N: compareCertSamples, Seed: r.Seed}
	bar := progress.New("certifying "+s.Label, d.Len(), g.quiet)
	cfg.Progress = func(done int) { bar.Set(done, "") }
	certs, err := smoothing.Certify(c.Context(), net, d.X, d.Len(), cfg)
	bar.Done()
	if err != nil {
		return fmt.Errorf("certifying %s: %w", s.Path, err)
	}
	sum, err := smoothing.Summarize(certs, d.Y, smoothing.DefaultRadii)
	if err != nil {
		return err
	}
	s.CertifiedAccuracy = map[string]float64{}
	for i, rad := range sum.Radii {
		s.CertifiedAccuracy[strconv.FormatFloat(rad, 'g', -1, 64)] = sum.CertifiedAccuracy[i]
	}
	s.Certification = &report.Certification{Sigma: sigma, Examples: d.Len(), Samples: compareCertSamples, Alpha: smoothing.DefaultAlpha}
	return nil
}

// summarise is a model's line in a comparison.
func summarise(r *report.Report, path string) report.ModelSummary {
	s := report.ModelSummary{Label: filepath.Base(path), Path: path, SHA256: r.Target.SHA256, CleanAccuracy: r.CleanAccuracy,
		Status: r.Status, Findings: map[string]int{}}
	for _, c := range r.Curves {
		if c.Name == report.WorstCaseCurve {
			s.Curves = append(s.Curves, c)
			if s.WorstCase == nil {
				s.WorstCase = c.Points
			}
		}
	}
	for _, f := range r.Findings {
		s.Findings[string(f.Severity)]++
	}
	if prov, ok := modelMeta[r]; ok {
		for _, d := range prov.Defenses {
			s.Defenses = append(s.Defenses, d.Name)
		}
		if p := prov.Privacy; p != nil {
			e, d := p.Epsilon, p.Delta
			s.Epsilon, s.Delta = &e, &d
			s.Defenses = append(s.Defenses, "dp-sgd")
		}
	}
	return s
}

func engineName(ot *openedTarget) string {
	if ot.model != nil {
		return engine.Name(ot.model.Net)
	}
	return "remote"
}

func outputsKind(ot *openedTarget) string {
	if ot.probabilities {
		return "probabilities"
	}
	return "logits"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// commandLine is the command as typed, for reports; Execute sets it.
var commandLine = "bulwark"

func shellJoin(args []string) string {
	var parts []string
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"$`\\|&;<>(){}*?[]#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
