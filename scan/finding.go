package scan

import (
	"fmt"
	"sort"
	"strings"
)

// Severity ranks findings on modelscan's ladder, with INFO below it for
// notices that need no action. The zero value, SeveritySafe, marks what the
// allowlist accepts; it is never a finding.
type Severity int

// The severities, in increasing order.
const (
	SeveritySafe Severity = iota
	SeverityInfo
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"SAFE", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("Severity(%d)", int(s))
	}
	return severityNames[s]
}

// Fickling returns the label Trail of Bits' fickling gives to the same level
// of concern, so that reports can be read by people used to either tool.
func (s Severity) Fickling() string {
	switch s {
	case SeveritySafe, SeverityInfo:
		return "LIKELY_SAFE"
	case SeverityLow:
		return "POSSIBLY_UNSAFE"
	case SeverityMedium:
		return "SUSPICIOUS"
	case SeverityHigh:
		return "LIKELY_UNSAFE"
	default:
		return "LIKELY_OVERTLY_MALICIOUS"
	}
}

// MarshalText writes the name, so that JSON carries "HIGH" and not 4.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name written by MarshalText.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity reads a severity name, case-insensitively.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(name, n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want INFO, LOW, MEDIUM, HIGH or CRITICAL)", name)
}

// MITRE ATLAS identifiers attached to findings. Each was checked against
// ATLAS.yaml (shared/data/atlas).
const (
	// AtlasSupplyChainModel is "AI Supply Chain Compromise: Model".
	AtlasSupplyChainModel = "AML.T0010.003"
	// AtlasUnsafeArtifacts is "User Execution: Unsafe AI Artifacts".
	AtlasUnsafeArtifacts = "AML.T0011.000"
	// AtlasCodeSigning is the mitigation "Code Signing".
	AtlasCodeSigning = "AML.M0013"
	// AtlasVerifyArtifacts is the mitigation "Verify AI Artifacts".
	AtlasVerifyArtifacts = "AML.M0014"
	// AtlasVulnScanning is the mitigation "Vulnerability Scanning", whose
	// ATLAS text is about scanning pickle files for unsafe calls.
	AtlasVulnScanning = "AML.M0016"
)

// atlasCode tags findings about content that runs code or touches files on
// load; atlasMalformed tags structural findings (a malformed file is an
// integrity problem and a way to confuse two parsers, not code by itself).
var (
	atlasCode      = []string{AtlasUnsafeArtifacts, AtlasSupplyChainModel, AtlasVulnScanning, AtlasCodeSigning, AtlasVerifyArtifacts}
	atlasMalformed = []string{AtlasSupplyChainModel, AtlasVerifyArtifacts}
)

// Finding is one thing a scan reports.
type Finding struct {
	// Path is the file on disk (as walked from the paths given to the scan).
	Path string `json:"path"`
	// Entry is the path inside archives and embedded payloads, joined with
	// "!/" (for example "archive/data.pkl"); empty for the file itself.
	Entry string `json:"entry,omitempty"`
	// Format is the format the finding is about: "pickle", "pytorch-zip",
	// "numpy", "safetensors", "onnx", "gguf", "keras", "hdf5",
	// "tf-savedmodel", "zip", "tar", ...
	Format string `json:"format"`
	// Offset is the byte offset of the finding inside the innermost stream
	// (the pickle opcode, the header field...), or -1 when there is none.
	Offset int64 `json:"offset"`
	// FileOffset is the same position in the file on disk when it maps to
	// one (stored zip entries, sections of the file), or -1.
	FileOffset int64 `json:"file_offset"`
	// Opcode is the pickle opcode (or the format's equivalent, such as the
	// TensorFlow op type) that the finding is about.
	Opcode string `json:"opcode,omitempty"`
	// Module and Name are the callable or class, resolved through the memo,
	// getattr chains and so on: "os" and "system".
	Module string `json:"module,omitempty"`
	Name   string `json:"name,omitempty"`
	// Args are the call's arguments, rendered like Python where they are
	// literals and shortened.
	Args     string   `json:"args,omitempty"`
	Severity Severity `json:"severity"`
	// Fickling is Severity on fickling's scale.
	Fickling string `json:"fickling"`
	// Rule is a dotted identifier such as scan.pickle.global.dangerous.
	Rule    string `json:"rule"`
	Message string `json:"message"`
	// ATLAS lists MITRE ATLAS technique and mitigation IDs.
	ATLAS []string `json:"atlas,omitempty"`
	// Count is how many times the same finding (same place, rule, callable
	// and arguments) occurred; Offset is the first.
	Count int `json:"count"`
}

// Location is Path, then Entry after "!/" when there is one.
func (f *Finding) Location() string {
	if f.Entry == "" {
		return f.Path
	}
	return f.Path + "!/" + f.Entry
}

// Callable is "module.name", or "" when the finding names none.
func (f *Finding) Callable() string {
	switch {
	case f.Module == "" && f.Name == "":
		return ""
	case f.Module == "":
		return f.Name
	case f.Name == "":
		return f.Module
	}
	return f.Module + "." + f.Name
}

// SkippedFile is a file the scan did not analyse, with the reason.
type SkippedFile struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// ScanError is a file or folder that could not be read.
type ScanError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Summary counts what a scan did, in the manner of modelscan's summary.
type Summary struct {
	FilesScanned   int              `json:"files_scanned"`
	EntriesScanned int              `json:"entries_scanned"`
	TotalFindings  int              `json:"total_findings"`
	BySeverity     map[Severity]int `json:"by_severity"`
	Errors         int              `json:"errors"`
	Skipped        int              `json:"skipped"`
	// Highest is the highest severity found, SAFE when there is nothing.
	Highest Severity `json:"highest"`
}

// Report is the result of a scan.
type Report struct {
	Inputs   []string      `json:"inputs"`
	Scanned  []string      `json:"scanned"`
	Skipped  []SkippedFile `json:"skipped"`
	Errors   []ScanError   `json:"errors"`
	Findings []Finding     `json:"findings"`
	Summary  Summary       `json:"summary"`
}

// Max returns the highest severity in the report.
func (r *Report) Max() Severity { return r.Summary.Highest }

// CountAtLeast returns how many findings are at or above min.
func (r *Report) CountAtLeast(min Severity) int {
	n := 0
	for i := range r.Findings {
		if r.Findings[i].Severity >= min {
			n++
		}
	}
	return n
}

// finish sorts everything into a fixed order and computes the summary, so
// that the same inputs always give byte-identical reports.
func (r *Report) finish() {
	sort.Slice(r.Findings, func(i, j int) bool { return findingLess(&r.Findings[i], &r.Findings[j]) })
	sort.Strings(r.Scanned)
	sort.Slice(r.Skipped, func(i, j int) bool {
		if r.Skipped[i].Path != r.Skipped[j].Path {
			return r.Skipped[i].Path < r.Skipped[j].Path
		}
		return r.Skipped[i].Reason < r.Skipped[j].Reason
	})
	sort.Slice(r.Errors, func(i, j int) bool {
		if r.Errors[i].Path != r.Errors[j].Path {
			return r.Errors[i].Path < r.Errors[j].Path
		}
		return r.Errors[i].Message < r.Errors[j].Message
	})
	s := Summary{BySeverity: map[Severity]int{}}
	for sev := SeverityInfo; sev <= SeverityCritical; sev++ {
		s.BySeverity[sev] = 0
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		s.BySeverity[f.Severity]++
		if f.Severity > s.Highest {
			s.Highest = f.Severity
		}
	}
	s.TotalFindings = len(r.Findings)
	s.FilesScanned = len(r.Scanned)
	s.EntriesScanned = r.Summary.EntriesScanned
	s.Errors = len(r.Errors)
	s.Skipped = len(r.Skipped)
	r.Summary = s
}

// findingLess orders by location, then offset, then from the most to the
// least severe, then by rule and callable.
func findingLess(a, b *Finding) bool {
	if a.Path != b.Path {
		return a.Path < b.Path
	}
	if a.Entry != b.Entry {
		return a.Entry < b.Entry
	}
	if a.Offset != b.Offset {
		return a.Offset < b.Offset
	}
	if a.Severity != b.Severity {
		return a.Severity > b.Severity
	}
	if a.Rule != b.Rule {
		return a.Rule < b.Rule
	}
	if ca, cb := a.Callable(), b.Callable(); ca != cb {
		return ca < cb
	}
	if a.Args != b.Args {
		return a.Args < b.Args
	}
	return a.Message < b.Message
}
