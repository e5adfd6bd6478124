package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/bulwark-sec/bulwark/internal/version"
)

// SchemaVersion is the version of the JSON report layout. It changes when a
// field changes meaning or disappears; new fields do not change it.
const SchemaVersion = 1

// Formats accepted by Write.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatSARIF = "sarif"
)

// Write writes the report in the given format: one switch for all writers.
func Write(w io.Writer, rep *Report, format string) error {
	switch strings.ToLower(format) {
	case FormatTable, "":
		return WriteTable(w, rep)
	case FormatJSON:
		return WriteJSON(w, rep)
	case FormatSARIF:
		return WriteSARIF(w, rep)
	}
	return fmt.Errorf("unknown report format %q (want table, json or sarif)", format)
}

// WriteTable writes a report for people: a summary, then one line per
// finding, most severe first.
func WriteTable(w io.Writer, rep *Report) error {
	s := rep.Summary
	fmt.Fprintf(w, "Scanned %d file(s), %d archive entr%s; %d skipped, %d error(s).\n",
		s.FilesScanned, s.EntriesScanned, plural(s.EntriesScanned, "y", "ies"), s.Skipped, s.Errors)
	var counts []string
	for sev := SeverityCritical; sev >= SeverityInfo; sev-- {
		if n := s.BySeverity[sev]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, sev))
		}
	}
	if len(counts) == 0 {
		fmt.Fprintln(w, "No findings.")
	} else {
		fmt.Fprintf(w, "Findings: %s.\n", strings.Join(counts, ", "))
	}
	if len(rep.Findings) > 0 {
		fmt.Fprintln(w)
		order := make([]int, len(rep.Findings))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool {
			return rep.Findings[order[a]].Severity > rep.Findings[order[b]].Severity
		})
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEVERITY\tLOCATION\tRULE\tDETAIL")
		for _, i := range order {
			f := &rep.Findings[i]
			loc := f.Location()
			if f.Offset >= 0 {
				loc += fmt.Sprintf("@%d", f.Offset)
			}
			detail := f.Message
			if f.Count > 1 {
				detail += fmt.Sprintf(" (×%d)", f.Count)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Severity, oneLine(loc), f.Rule, oneLine(detail))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rep.Errors) > 0 {
		fmt.Fprintln(w, "\nErrors:")
		for _, e := range rep.Errors {
			fmt.Fprintf(w, "  %s: %s\n", oneLine(e.Path), oneLine(e.Message))
		}
	}
	if len(rep.Skipped) > 0 {
		fmt.Fprintln(w, "\nSkipped:")
		for _, sk := range rep.Skipped {
			fmt.Fprintf(w, "  %s: %s\n", oneLine(sk.Path), sk.Reason)
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// oneLine keeps control characters from the scanned files out of the
// terminal.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '·'
		}
		return r
	}, s)
}

// jsonReport is the JSON layout, close to modelscan's: a summary, the
// issues, the errors.
type jsonReport struct {
	SchemaVersion int         `json:"schema_version"`
	Tool          jsonTool    `json:"tool"`
	Summary       jsonSummary `json:"summary"`
	Issues        []Finding   `json:"issues"`
	Errors        []jsonEntry `json:"errors"`
}

type jsonTool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type jsonSummary struct {
	TotalIssuesBySeverity map[Severity]int `json:"total_issues_by_severity"`
	TotalIssues           int              `json:"total_issues"`
	HighestSeverity       Severity         `json:"highest_severity"`
	InputPaths            []string         `json:"input_paths"`
	Scanned               jsonScanned      `json:"scanned"`
	Skipped               jsonSkipped      `json:"skipped"`
	TotalErrors           int              `json:"total_errors"`
}

type jsonScanned struct {
	TotalScanned   int      `json:"total_scanned"`
	EntriesScanned int      `json:"entries_scanned"`
	ScannedFiles   []string `json:"scanned_files"`
}

type jsonSkipped struct {
	TotalSkipped int         `json:"total_skipped"`
	SkippedFiles []jsonEntry `json:"skipped_files"`
}

type jsonEntry struct {
	Category    string `json:"category"`
	Description string `json:"description"`
	Source      string `json:"source"`
}

// WriteJSON writes the report as one JSON document. There is no timestamp,
// so that the same inputs give the same bytes.
func WriteJSON(w io.Writer, rep *Report) error {
	out := jsonReport{
		SchemaVersion: SchemaVersion,
		Tool:          jsonTool{Name: "bulwark-scan", Version: version.Version},
		Summary: jsonSummary{
			TotalIssuesBySeverity: rep.Summary.BySeverity,
			TotalIssues:           rep.Summary.TotalFindings,
			HighestSeverity:       rep.Summary.Highest,
			InputPaths:            nonNil(rep.Inputs),
			Scanned: jsonScanned{
				TotalScanned:   rep.Summary.FilesScanned,
				EntriesScanned: rep.Summary.EntriesScanned,
				ScannedFiles:   nonNil(rep.Scanned),
			},
			Skipped:     jsonSkipped{TotalSkipped: len(rep.Skipped), SkippedFiles: []jsonEntry{}},
			TotalErrors: len(rep.Errors),
		},
		Issues: rep.Findings,
		Errors: []jsonEntry{},
	}
	if out.Issues == nil {
		out.Issues = []Finding{}
	}
	for _, s := range rep.Skipped {
		out.Summary.Skipped.SkippedFiles = append(out.Summary.Skipped.SkippedFiles, jsonEntry{Category: "SCAN_NOT_SUPPORTED", Description: s.Reason, Source: s.Path})
	}
	for _, e := range rep.Errors {
		out.Errors = append(out.Errors, jsonEntry{Category: "PATH", Description: e.Message, Source: e.Path})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// SARIF 2.1.0, written with our own structs: the subset code-scanning
// services read (tool and rules, results with physical locations).

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
	Properties           sarifRuleProps `json:"properties"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifRuleProps struct {
	Tags             []string `json:"tags"`
	SecuritySeverity string   `json:"security-severity"`
}

type sarifResult struct {
	RuleID     string           `json:"ruleId"`
	RuleIndex  int              `json:"ruleIndex"`
	Level      string           `json:"level"`
	Message    sarifText        `json:"message"`
	Locations  []sarifLocation  `json:"locations"`
	Properties sarifResultProps `json:"properties"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	ByteOffset int64 `json:"byteOffset"`
	ByteLength int64 `json:"byteLength"`
}

type sarifResultProps struct {
	Severity string   `json:"severity"`
	Fickling string   `json:"fickling"`
	Format   string   `json:"format,omitempty"`
	Entry    string   `json:"entry,omitempty"`
	Offset   *int64   `json:"entryByteOffset,omitempty"`
	Opcode   string   `json:"opcode,omitempty"`
	Callable string   `json:"callable,omitempty"`
	Args     string   `json:"args,omitempty"`
	Count    int      `json:"count"`
	ATLAS    []string `json:"atlas,omitempty"`
}

// sarifLevel maps severities to SARIF levels.
func sarifLevel(s Severity) string {
	switch {
	case s >= SeverityHigh:
		return "error"
	case s == SeverityMedium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the CVSS-like score code-scanning services sort by.
func securitySeverity(s Severity) string {
	return [...]string{"0.0", "1.0", "3.0", "5.5", "8.0", "9.5"}[s]
}

// WriteSARIF writes the report as SARIF 2.1.0. A finding inside a file gets
// region.byteOffset when its position maps to the file on disk (a pickle
// opcode in a stored zip entry does; one in compressed data does not, and
// then the offset inside the entry is in the result's properties).
func WriteSARIF(w io.Writer, rep *Report) error {
	ruleIndex := map[string]int{}
	var rules []sarifRule
	for _, f := range rep.Findings {
		if _, ok := ruleIndex[f.Rule]; ok {
			continue
		}
		ruleIndex[f.Rule] = -1
	}
	ids := make([]string, 0, len(ruleIndex))
	for id := range ruleIndex {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for i, id := range ids {
		ruleIndex[id] = i
		sev := maxSeverityOf(rep, id)
		rules = append(rules, sarifRule{
			ID:                   id,
			Name:                 ruleName(id),
			ShortDescription:     sarifText{Text: ruleDescriptions[id]},
			FullDescription:      sarifText{Text: ruleDescriptions[id]},
			DefaultConfiguration: sarifConfig{Level: sarifLevel(sev)},
			Properties:           sarifRuleProps{Tags: []string{"security", "ml-supply-chain"}, SecuritySeverity: securitySeverity(sev)},
		})
	}
	results := []sarifResult{}
	for _, f := range rep.Findings {
		r := sarifResult{
			RuleID:    f.Rule,
			RuleIndex: ruleIndex[f.Rule],
			Level:     sarifLevel(f.Severity),
			Message:   sarifText{Text: f.Message},
			Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: sarifURI(f.Path)}}}},
			Properties: sarifResultProps{
				Severity: f.Severity.String(), Fickling: f.Fickling, Format: f.Format, Entry: f.Entry,
				Opcode: f.Opcode, Callable: f.Callable(), Args: f.Args, Count: f.Count, ATLAS: f.ATLAS,
			},
		}
		if f.FileOffset >= 0 {
			r.Locations[0].PhysicalLocation.Region = &sarifRegion{ByteOffset: f.FileOffset, ByteLength: 1}
		}
		if f.Entry != "" && f.Offset >= 0 {
			off := f.Offset
			r.Properties.Offset = &off
		}
		results = append(results, r)
	}
	log := sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs: []sarifRun{{
			Tool: sarifTool{Driver: sarifDriver{
				Name: "bulwark-scan", Version: version.Version,
				InformationURI: "https://github.com/bulwark-sec/bulwark",
				Rules:          nonNilRules(rules),
			}},
			Results: results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

func nonNilRules(r []sarifRule) []sarifRule {
	if r == nil {
		return []sarifRule{}
	}
	return r
}

// sarifURI turns a file path into a URI: file:// for absolute paths, a
// relative reference otherwise (resolved against the scan's folder).
func sarifURI(p string) string {
	abs := filepath.IsAbs(p)
	p = filepath.ToSlash(p)
	var b strings.Builder
	for _, c := range []byte(p) {
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`"%<>\^`+"`{|}#?[]", c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	if abs {
		if !strings.HasPrefix(p, "/") {
			return "file:///" + b.String() // C:/...
		}
		return "file://" + b.String()
	}
	return b.String()
}

func maxSeverityOf(rep *Report, rule string) Severity {
	var s Severity
	for i := range rep.Findings {
		if rep.Findings[i].Rule == rule && rep.Findings[i].Severity > s {
			s = rep.Findings[i].Severity
		}
	}
	return s
}

// ruleName is the rule id in CamelCase, as SARIF names go.
func ruleName(id string) string {
	var b strings.Builder
	up := true
	for _, r := range strings.TrimPrefix(id, "scan.") {
		if r == '.' || r == '-' {
			up = true
			continue
		}
		if up {
			b.WriteString(strings.ToUpper(string(r)))
			up = false
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}
