package report

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/bulwark-sec/bulwark/internal/testutil"
	"github.com/bulwark-sec/bulwark/report/atlas"
)

// sarifSchema is the OASIS SARIF 2.1.0 schema (testutil.SARIFSchema).
func sarifSchema(t *testing.T) *jsonschema.Schema { return testutil.SARIFSchema(t) }

// sarifLog is the part of SARIF the test checks by structure.
type sarifLog struct {
	Version string `json:"version"`
	Runs    []struct {
		Tool struct {
			Driver struct {
				Name  string `json:"name"`
				Rules []struct {
					ID               string `json:"id"`
					Name             string `json:"name"`
					ShortDescription struct{ Text string }
					Help             struct{ Text, Markdown string }
					DefaultConfig    struct{ Level string } `json:"defaultConfiguration"`
					Properties       map[string]any
				} `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Artifacts []struct {
			Location struct{ URI, URIBaseID string } `json:"location"`
			Hashes   map[string]string
		} `json:"artifacts"`
		Invocations []struct {
			CommandLine         string
			ExecutionSuccessful bool
			Notifications       []struct {
				Level   string
				Message struct{ Text string }
			} `json:"toolExecutionNotifications"`
		} `json:"invocations"`
		Results []struct {
			RuleID    string `json:"ruleId"`
			RuleIndex int    `json:"ruleIndex"`
			Level     string `json:"level"`
			Message   struct{ Text string }
			Locations []struct {
				PhysicalLocation struct {
					ArtifactLocation struct {
						URI       string `json:"uri"`
						URIBaseID string `json:"uriBaseId"`
						Index     int    `json:"index"`
					} `json:"artifactLocation"`
				} `json:"physicalLocation"`
			} `json:"locations"`
			PartialFingerprints map[string]string `json:"partialFingerprints"`
			Properties          struct {
				Severity string             `json:"severity"`
				Metrics  map[string]float64 `json:"metrics"`
				Tags     []string           `json:"tags"`
			} `json:"properties"`
		} `json:"results"`
	} `json:"runs"`
}

func TestSARIF(t *testing.T) {
	schema := sarifSchema(t)
	for name, r := range map[string]*Report{"complete": fixture(t), "partial": partialFixture(t)} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Encode(&buf, r, "sarif"); err != nil {
				t.Fatal(err)
			}
			if err := validateJSON(t, schema, buf.Bytes()); err != nil {
				t.Fatalf("report.sarif is not valid SARIF 2.1.0: %v", err)
			}
			// The schema check has teeth: a level SARIF does not know fails.
			if bad := bytes.Replace(buf.Bytes(), []byte(`"level": "error"`), []byte(`"level": "high"`), 1); bytes.Equal(bad, buf.Bytes()) {
				t.Fatal("no error-level result to break")
			} else if validateJSON(t, schema, bad) == nil {
				t.Fatal("the SARIF schema accepted level \"high\"")
			}
			var log sarifLog
			if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
				t.Fatal(err)
			}
			if log.Version != "2.1.0" || len(log.Runs) != 1 {
				t.Fatalf("version %q with %d runs", log.Version, len(log.Runs))
			}
			run := log.Runs[0]
			if run.Tool.Driver.Name != "bulwark" {
				t.Errorf("driver %q", run.Tool.Driver.Name)
			}
			want := r.normalized()
			var ids []string
			for _, f := range want.Findings {
				if !slices.Contains(ids, f.ID) {
					ids = append(ids, f.ID)
				}
			}
			var ruleIDs []string
			for _, rule := range run.Tool.Driver.Rules {
				ruleIDs = append(ruleIDs, rule.ID)
				if rule.ShortDescription.Text == "" || rule.Help.Text == "" || rule.Name == "" {
					t.Errorf("rule %s lacks a name, description or help", rule.ID)
				}
				if _, ok := rule.Properties["security-severity"]; !ok {
					t.Errorf("rule %s has no security-severity", rule.ID)
				}
			}
			if !slices.Equal(ruleIDs, ids) {
				t.Errorf("rules %v, want one per finding ID %v", ruleIDs, ids)
			}
			if len(run.Results) != len(want.Findings) {
				t.Fatalf("%d results for %d findings", len(run.Results), len(want.Findings))
			}
			levels := map[Severity]string{Critical: "error", High: "error", Medium: "warning", Low: "note", Info: "note"}
			for i, res := range run.Results {
				f := want.Findings[i]
				if res.RuleID != f.ID || ruleIDs[res.RuleIndex] != f.ID {
					t.Errorf("result %d: rule %s (index %d), want %s", i, res.RuleID, res.RuleIndex, f.ID)
				}
				if res.Level != levels[f.Severity] {
					t.Errorf("result %d: level %q for %s", i, res.Level, f.Severity)
				}
				if len(res.Locations) != 1 || res.Locations[0].PhysicalLocation.ArtifactLocation.Index != 0 {
					t.Errorf("result %d: not located at the model artifact", i)
				}
				for k, v := range f.Metrics {
					if res.Properties.Metrics[k] != v {
						t.Errorf("result %d: metric %s = %v, want %v", i, k, res.Properties.Metrics[k], v)
					}
				}
				if !slices.Equal(res.Properties.Tags, f.ATLAS) && len(f.ATLAS) > 0 {
					t.Errorf("result %d: tags %v, want the ATLAS IDs %v", i, res.Properties.Tags, f.ATLAS)
				}
				if res.PartialFingerprints[fingerprintKey] == "" {
					t.Errorf("result %d: no fingerprint", i)
				}
			}
			inv := run.Invocations[0]
			if inv.CommandLine != r.Command || inv.ExecutionSuccessful != (r.Status == StatusComplete) {
				t.Errorf("invocation %+v", inv)
			}
			if name == "partial" && len(inv.Notifications) != 2 { // the stop and the failed attack
				t.Errorf("partial run: %d notifications, want 2", len(inv.Notifications))
			}
		})
	}
}

func TestSARIFRuleHelpNamesATLAS(t *testing.T) {
	log := buildSARIF(fixture(t).normalized())
	rule := log.Runs[0].Tool.Driver.Rules[0]
	if rule.Help == nil || !bytes.Contains([]byte(*rule.Help.Markdown), []byte(atlas.URL(atlas.EvadeModel))) {
		t.Error("the rule's help does not link its ATLAS technique")
	}
}

func TestArtifactLocation(t *testing.T) {
	for path, want := range map[string][2]string{
		"models/fm cnn.onnx":            {"models/fm%20cnn.onnx", srcRoot},
		"./m.onnx":                      {"m.onnx", srcRoot},
		"a:b.onnx":                      {"./a:b.onnx", srcRoot},
		"/abs/m.onnx":                   {"file:///abs/m.onnx", ""},
		"https://host:8080/v2/models/m": {"https://host:8080/v2/models/m", ""},
	} {
		loc := artifactLocation(path)
		base := ""
		if loc.URIBaseID != nil {
			base = *loc.URIBaseID
		}
		if *loc.URI != want[0] || base != want[1] {
			t.Errorf("%q: uri %q base %q, want %q %q", path, *loc.URI, base, want[0], want[1])
		}
	}
}
