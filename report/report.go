// Package report is the one result of a bulwark run and its writers: a
// terminal table, JSON with a versioned schema, a self-contained HTML page,
// SARIF 2.1.0 and Markdown, all written from the same Report so that they
// can never disagree.
//
// The Report is shared by every kind of check. Its evasion part (the fields
// CleanAccuracy, Attacks, Curves, WorstCase and Examples) is filled by
// `bulwark assess`; other checks leave it empty and add their own fields
// beside it. Findings, sanity checks and the policy verdict are common.
package report

import (
	"encoding/json"
	"time"
)

// SchemaVersion is the version of the JSON layout of report.json. The minor
// number grows when fields are added; the major number when a field changes
// meaning or goes away, which readers then refuse.
const SchemaVersion = "1.0"

// Report statuses.
const (
	StatusComplete = "complete"
	StatusPartial  = "partial" // interrupted or out of budget: the numbers cover what was done
)

// Attack run statuses.
const (
	RunOK      = "ok"
	RunPartial = "partial"
	RunFailed  = "failed"
	RunSkipped = "skipped"
)

// Sanity check statuses.
const (
	CheckPass    = "pass"
	CheckFail    = "fail"
	CheckWarn    = "warn"
	CheckSkipped = "skipped"
)

// WorstCaseCurve is the name of the curve of the per-example worst case
// over all attacks.
const WorstCaseCurve = "worst case"

// Report is everything one run found.
type Report struct {
	SchemaVersion string `json:"schema_version"`
	Tool          Tool   `json:"tool"`
	// Command is the exact command line, so that the run can be repeated.
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Status   string    `json:"status" jsonschema:"enum=complete,enum=partial"`
	// PartialReason says why a partial run stopped (interrupted, budget).
	PartialReason string  `json:"partial_reason,omitempty"`
	Target        Target  `json:"target"`
	Dataset       Dataset `json:"dataset"`
	// Profile names the assessment profile; ProfileSpec is the profile as
	// it was run, defaults filled in.
	Profile     string          `json:"profile"`
	ProfileSpec json.RawMessage `json:"profile_spec,omitempty"`
	Seed        uint64          `json:"seed"`

	// CleanAccuracy is the accuracy on the Dataset.N evaluated examples
	// before any attack (evasion).
	CleanAccuracy float64 `json:"clean_accuracy"`
	// Attacks holds one run per (attack, norm, eps) (evasion).
	Attacks []AttackRun `json:"attacks"`
	// Curves are robust accuracy against eps, one per attack and norm, plus
	// one named WorstCaseCurve per norm (evasion).
	Curves []Curve `json:"curves"`
	// WorstCase is, per eps, the accuracy that survives every attack: an
	// example counts only if no attack broke it (evasion).
	WorstCase []Point `json:"worst_case"`
	// Examples are thumbnails of adversarial examples (evasion).
	Examples []Example `json:"examples"`

	Sanity   []SanityCheck `json:"sanity"`
	Findings []Finding     `json:"findings"`
	// Policy is the verdict of the policy file, when one was given.
	Policy *PolicyResult `json:"policy,omitempty"`
	// Comparison puts several models assessed the same way side by side
	// (assess --compare); the first is this report's own model, whose
	// details the rest of the report holds.
	Comparison []ModelSummary `json:"comparison,omitempty"`
}

// ModelSummary is one model's headline figures in a comparison.
type ModelSummary struct {
	// Label names the model in tables and charts (its file name).
	Label  string `json:"label"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256,omitempty"`
	// Defenses lists the training-time defenses its metadata records.
	Defenses []string `json:"defenses,omitempty"`
	// Epsilon and Delta are its differential-privacy guarantee, if any.
	Epsilon       *float64 `json:"epsilon,omitempty"`
	Delta         *float64 `json:"delta,omitempty"`
	CleanAccuracy float64  `json:"clean_accuracy"`
	// WorstCase is robust accuracy per eps over every attack (main norm).
	WorstCase []Point `json:"worst_case"`
	// Curves are its per-attack and worst-case curves.
	Curves []Curve `json:"curves,omitempty"`
	// CertifiedAccuracy, keyed by L2 radius, for randomized-smoothing
	// models certified in the run.
	CertifiedAccuracy map[string]float64 `json:"certified_accuracy,omitempty"`
	// Certification says how CertifiedAccuracy was measured.
	Certification *Certification `json:"certification,omitempty"`
	Status        string         `json:"status" jsonschema:"enum=complete,enum=partial"`
	// Findings counts its findings by severity.
	Findings map[string]int `json:"findings,omitempty"`
	// Report is where its full report was written, relative to this one.
	Report string `json:"report,omitempty"`
}

// Certification is a randomized-smoothing certification run (Cohen et al.
// 2019) behind a comparison's certified accuracy: noise Sigma, the first
// Examples of the assessed examples, Samples noisy copies each to bound
// p_A, each certificate wrong with probability at most Alpha.
type Certification struct {
	Sigma    float64 `json:"sigma"`
	Examples int     `json:"examples"`
	Samples  int     `json:"samples"`
	Alpha    float64 `json:"alpha"`
}

// Tool identifies the program that made the report.
type Tool struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Engine    string `json:"engine"`
	GoVersion string `json:"go_version"`
}

// Target is the model under test.
type Target struct {
	// Path is the model file or the endpoint's URL.
	Path string `json:"path"`
	// Format is "native", "onnx" or "remote" for evasion targets.
	Format string `json:"format"`
	// SHA256 is the hex digest of the model file (empty for remote models).
	SHA256     string   `json:"sha256,omitempty"`
	Classes    int      `json:"classes"`
	ClassNames []string `json:"class_names,omitempty"`
	InputShape []int    `json:"input_shape,omitempty"`
	// ThreatModel is what the attacker could use, such as "white-box
	// (gradients)".
	ThreatModel string `json:"threat_model"`
	// Defense names an input-transformation defense evaluated in the loop.
	Defense string `json:"defense,omitempty"`
	// Outputs is "logits" or "probabilities".
	Outputs string `json:"outputs,omitempty"`
}

// Dataset is the data the checks ran on.
type Dataset struct {
	Name        string `json:"name"`
	Split       string `json:"split"`
	Fingerprint string `json:"fingerprint"`
	// Size is the number of examples in the split; N how many were
	// evaluated.
	Size int `json:"size"`
	N    int `json:"n"`
	// SampleSeed is the seed that chose the N examples, when they were
	// sampled; Indices are their positions in the split.
	SampleSeed *uint64 `json:"sample_seed,omitempty"`
	Indices    []int   `json:"indices,omitempty"`
}

// AttackRun is the outcome of one evasion attack at one norm and eps.
type AttackRun struct {
	// Attack is the dotted ID, such as "evasion.pgd"; Version its version.
	Attack  string  `json:"attack"`
	Version int     `json:"version"`
	Norm    string  `json:"norm"`
	Eps     float64 `json:"eps"`
	// ThreatModel is what the attack used, such as "black-box (scores)".
	ThreatModel string `json:"threat_model,omitempty"`
	// Params are the attack's effective parameters.
	Params any `json:"params,omitempty"`
	// N examples were given, Attacked of them (the correctly classified
	// ones) attacked.
	N        int `json:"n"`
	Attacked int `json:"attacked"`
	// RobustAccuracy is the fraction of the N examples still classified
	// correctly after the attack; SuccessRate the fraction of the attacked
	// ones that were broken.
	RobustAccuracy float64 `json:"robust_accuracy"`
	SuccessRate    float64 `json:"success_rate"`
	// MedianPerturbation is the median size, in Norm, of the successful
	// perturbations (0 when none succeeded).
	MedianPerturbation float64 `json:"median_perturbation"`
	Queries            int64   `json:"queries"`
	Gradients          int64   `json:"gradients"`
	Seconds            float64 `json:"seconds"`
	Status             string  `json:"status" jsonschema:"enum=ok,enum=partial,enum=failed,enum=skipped"`
	Error              string  `json:"error,omitempty"`
	// QueriesToSuccess describes the queries spent per broken example, for
	// attacks that count them.
	QueriesToSuccess *QueryStats `json:"queries_to_success,omitempty"`
	// ObliviousRobustAccuracy, for a model with an input-transformation
	// defense in the loop, is what the same attack achieves when it
	// ignores the defense (run on the bare model, its examples then sent
	// through the defense): the robustness the defense appears to have.
	ObliviousRobustAccuracy *float64 `json:"oblivious_robust_accuracy,omitempty"`
	// Components break down an ensemble (AutoAttack) by its parts, in the
	// order they ran, each on the examples still robust.
	Components []Component `json:"components,omitempty"`
}

// Component is one part of an ensemble attack run.
type Component struct {
	Name     string  `json:"name"`
	Attacked int     `json:"attacked"`
	Broken   int     `json:"broken"`
	Seconds  float64 `json:"seconds"`
}

// QueryStats describes the queries an attack needed per broken example.
// It has attack.QueryStats' fields, so one converts to the other.
type QueryStats struct {
	Mean   float64 `json:"mean"`
	Median float64 `json:"median"`
	Count  int     `json:"count"`
}

// Curve is robust accuracy against eps for one attack (or the worst case)
// in one norm.
type Curve struct {
	Name   string  `json:"name"`
	Norm   string  `json:"norm"`
	Points []Point `json:"points"`
}

// Point is the robust accuracy at one eps.
type Point struct {
	Eps            float64 `json:"eps"`
	RobustAccuracy float64 `json:"robust_accuracy"`
	// Norm is set in Report.WorstCase when the report covers more than one
	// norm; curves carry theirs in Curve.Norm.
	Norm string `json:"norm,omitempty"`
}

// SanityCheck is one test of the evaluation itself, such as a check for
// gradient masking.
type SanityCheck struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status" jsonschema:"enum=pass,enum=fail,enum=warn,enum=skipped"`
	Detail string `json:"detail,omitempty"`
}

// Finding is one thing worth acting on.
type Finding struct {
	// ID is the stable, dotted rule ID, such as
	// "evasion.low-robust-accuracy"; it is the SARIF rule ID.
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Severity    Severity `json:"severity" jsonschema:"enum=CRITICAL,enum=HIGH,enum=MEDIUM,enum=LOW,enum=INFO"`
	Description string   `json:"description"`
	Remediation string   `json:"remediation,omitempty"`
	// ATLAS lists MITRE ATLAS technique (and mitigation) IDs, all from the
	// table in package report/atlas.
	ATLAS   []string           `json:"atlas,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Attack, Norm and Eps say which attack run the finding is about.
	Attack string  `json:"attack,omitempty"`
	Norm   string  `json:"norm,omitempty"`
	Eps    float64 `json:"eps,omitempty"`
}

// Example is one adversarial example, as PNG thumbnails.
type Example struct {
	// Index is the example's position in the dataset split.
	Index        int     `json:"index"`
	Label        int     `json:"label"`
	LabelName    string  `json:"label_name,omitempty"`
	AdvLabel     int     `json:"adv_label"`
	AdvLabelName string  `json:"adv_label_name,omitempty"`
	Attack       string  `json:"attack"`
	Norm         string  `json:"norm"`
	Eps          float64 `json:"eps"`
	// Perturbation is the size of the perturbation in Norm.
	Perturbation float64 `json:"perturbation"`
	// Original, Adversarial and Diff are PNG images (see Thumbnail and
	// DiffThumbnail); base64 in JSON.
	Original    []byte `json:"original,omitempty"`
	Adversarial []byte `json:"adversarial,omitempty"`
	Diff        []byte `json:"diff,omitempty"`
}

// PolicyResult is the verdict of a policy file on the report.
type PolicyResult struct {
	File string `json:"file"`
	// Pass is true when every rule holds.
	Pass  bool         `json:"pass"`
	Rules []RuleResult `json:"rules"`
}

// RuleResult is the outcome of one policy rule.
type RuleResult struct {
	Rule string `json:"rule"`
	// Value is the value the rule was decided on; absent when the report
	// lacks the metric, in which case Error says so and Holds is false.
	Value *float64 `json:"value,omitempty"`
	Holds bool     `json:"holds"`
	Error string   `json:"error,omitempty"`
}
