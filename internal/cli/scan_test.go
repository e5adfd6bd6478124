package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runScan runs the scan command on its own: the lead wires it into the
// root command.
func runScan(t *testing.T, args ...string) (code int, stdout string) {
	t.Helper()
	var o, e bytes.Buffer
	c := newScanCmd()
	c.SetOut(&o)
	c.SetErr(&e)
	c.SetArgs(args)
	c.SilenceUsage, c.SilenceErrors = true, true
	err := c.ExecuteContext(context.Background())
	return ExitCode(err), o.String()
}

func TestScanExitCodes(t *testing.T) {
	dir := t.TempDir()
	benign := filepath.Join(dir, "ok.pkl")
	// pickle.dumps({"a": 1}, protocol=2)
	if err := os.WriteFile(benign, []byte("\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."), 0o644); err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(dir, "evil.pkl")
	if err := os.WriteFile(evil, []byte("cos\nsystem\n(S'touch /tmp/x'\ntR."), 0o644); err != nil {
		t.Fatal(err)
	}

	if code, out := runScan(t, benign); code != ExitOK || !strings.Contains(out, "No findings") {
		t.Errorf("benign: exit %d, output:\n%s", code, out)
	}
	if code, out := runScan(t, evil); code != ExitPolicy || !strings.Contains(out, "os.system") {
		t.Errorf("malicious: exit %d, output:\n%s", code, out)
	}
	// CRITICAL is at or above every threshold.
	if code, _ := runScan(t, "--fail-on", "CRITICAL", evil); code != ExitPolicy {
		t.Errorf("--fail-on CRITICAL: exit %d", code)
	}
	if code, _ := runScan(t, filepath.Join(dir, "missing.pkl")); code != ExitInput {
		t.Errorf("missing path: exit %d, want %d", code, ExitInput)
	}
	if code, _ := runScan(t, "--format", "xml", benign); code != ExitInput {
		t.Errorf("bad format: exit %d", code)
	}
	if code, _ := runScan(t, "--fail-on", "SOMETIMES", benign); code != ExitInput {
		t.Errorf("bad --fail-on: exit %d", code)
	}
	if code, _ := runScan(t); code != ExitInput {
		t.Errorf("no path: exit %d", code)
	}

	out := filepath.Join(dir, "report.sarif")
	if code, stdout := runScan(t, "--format", "sarif", "--out", out, dir); code != ExitPolicy || stdout != "" {
		t.Errorf("sarif to file: exit %d, stdout %q", code, stdout)
	}
	var sarif map[string]any
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &sarif); err != nil || sarif["version"] != "2.1.0" {
		t.Errorf("SARIF file: %v %v", err, sarif["version"])
	}
	code, stdout := runScan(t, "--format", "json", dir)
	var rep map[string]any
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != ExitPolicy {
		t.Fatalf("json: exit %d, %v", code, err)
	}
	if rep["summary"].(map[string]any)["total_issues"].(float64) < 2 {
		t.Errorf("json summary: %v", rep["summary"])
	}
	// --allow makes the global safe.
	if code, _ := runScan(t, "--allow", "os.system", evil); code != ExitOK {
		t.Errorf("--allow os.system: exit %d", code)
	}
}
