package cli

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/internal/oiptest"
	"github.com/bulwark-sec/bulwark/model"
)

// trainSmall trains a small mlp through the CLI, as a user would.
func trainSmall(t *testing.T, dir string) string {
	t.Helper()
	needFashionMNIST(t)
	out := filepath.Join(dir, "mlp.safetensors")
	if code, _, stderr := run(t, "train", "--data", "fashion-mnist", "--arch", "mlp", "--epochs", "2", "--n", "4000", "--out", out, "-q"); code != 0 {
		t.Fatalf("train exit %d: %s", code, stderr)
	}
	return out
}

func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, s)
	}
	return m
}

func TestAttackCommand(t *testing.T) {
	dir := t.TempDir()
	m := trainSmall(t, dir)

	code, stdout, stderr := run(t, "attack", "--model", m, "--data", "fashion-mnist", "--attack", "pgd", "--norm", "inf",
		"--eps", "0.1", "--steps", "10", "--step-size", "0.02", "--n", "200", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r := decodeJSON(t, stdout)
	for _, k := range []string{"attack", "params", "n", "clean_accuracy", "robust_accuracy", "success_rate", "median_perturbation",
		"queries", "gradients", "seconds", "adv_per_second"} {
		if _, ok := r[k]; !ok {
			t.Errorf("--json lacks %q", k)
		}
	}
	if r["attack"] != "evasion.pgd" || r["n"].(float64) != 200 {
		t.Errorf("attack %v n %v", r["attack"], r["n"])
	}
	clean, robust := r["clean_accuracy"].(float64), r["robust_accuracy"].(float64)
	if !(clean > 0.6 && robust < clean/2) {
		t.Errorf("clean %g robust %g: PGD at eps 0.1 should break most of an undefended mlp", clean, robust)
	}
	if mp := r["median_perturbation"].(float64); mp > 0.1+1e-6 || mp <= 0 {
		t.Errorf("median L∞ perturbation %g outside (0, 0.1]", mp)
	}

	// Square with --save-adv: the file loads back as a dataset on which the
	// model's accuracy is the robust accuracy.
	adv := filepath.Join(dir, "adv.npz")
	code, stdout, stderr = run(t, "attack", "--model", m, "--data", "fashion-mnist", "--attack", "square", "--eps", "0.1",
		"--queries", "300", "--n", "60", "--save-adv", adv, "--json")
	if code != 0 {
		t.Fatalf("square exit %d: %s", code, stderr)
	}
	sq := decodeJSON(t, stdout)
	if sq["gradients"].(float64) != 0 {
		t.Errorf("square used %v gradients", sq["gradients"])
	}
	if q := sq["queries"].(float64); q > 60*300+2*60 {
		t.Errorf("square used %v queries, more than its budget", q)
	}
	code, stdout, stderr = run(t, "eval", "--model", m, "--data", adv, "--json")
	if code != 0 {
		t.Fatalf("eval on adv.npz: exit %d: %s", code, stderr)
	}
	if acc := decodeJSON(t, stdout)["accuracy"].(float64); math.Abs(acc-sq["robust_accuracy"].(float64)) > 1e-9 {
		t.Errorf("accuracy on the saved adversarial examples %g, robust accuracy %v", acc, sq["robust_accuracy"])
	}

	// An ONNX model exported from PyTorch (testdata/attackref) runs the same
	// way, white-box and black-box.
	onnx := filepath.Join("..", "..", "testdata", "attackref", "model.onnx")
	for _, a := range []string{"pgd", "square"} {
		code, stdout, stderr = run(t, "attack", "--model", onnx, "--data", "fashion-mnist", "--attack", a, "--eps", "0.1", "--queries", "200", "--n", "40", "--json")
		if a == "pgd" {
			code, stdout, stderr = run(t, "attack", "--model", onnx, "--data", "fashion-mnist", "--attack", a, "--eps", "0.1", "--steps", "10", "--n", "40", "--json")
		}
		if code != 0 {
			t.Fatalf("%s on ONNX: exit %d: %s", a, code, stderr)
		}
		if r := decodeJSON(t, stdout); r["format"] != "onnx" || r["success_rate"].(float64) < 0.5 {
			t.Errorf("%s on ONNX: %v", a, r)
		}
	}

	// A preprocessing defense in the loop: attacked through BPDA, with the
	// oblivious figure beside it.
	code, stdout, stderr = run(t, "attack", "--model", m, "--data", "fashion-mnist", "--attack", "pgd", "--eps", "0.1", "--steps", "10",
		"--n", "60", "--defense", "bitdepth:2", "--json")
	if code != 0 {
		t.Fatalf("--defense: exit %d: %s", code, stderr)
	}
	if r := decodeJSON(t, stdout); r["oblivious_robust_accuracy"] == nil || r["oblivious_robust_accuracy"].(float64) <= r["robust_accuracy"].(float64) {
		t.Errorf("--defense bitdepth:2: oblivious %v, adaptive %v", r["oblivious_robust_accuracy"], r["robust_accuracy"])
	}

	// --list names every attack.
	_, stdout, _ = run(t, "attack", "--list")
	for _, a := range []string{"fgsm", "pgd", "apgd-ce", "apgd-t", "cw", "deepfool", "fab", "square", "hsja", "boundary", "autoattack"} {
		if !strings.Contains(stdout, a) {
			t.Errorf("--list lacks %s", a)
		}
	}
}

func TestAttackRemoteTarget(t *testing.T) {
	dir := t.TempDir()
	path := trainSmall(t, dir)
	mm, err := model.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := oiptest.New(t, "fm-mlp", mm.Net)
	url := srv.ModelURL()

	code, stdout, stderr := run(t, "attack", "--model", url, "--data", "fashion-mnist", "--attack", "hsja", "--queries", "300", "--n", "8", "--json")
	if code != 0 {
		t.Fatalf("hsja exit %d: %s", code, stderr)
	}
	r := decodeJSON(t, stdout)
	// Every example the server saw is counted: the attack's queries plus the
	// probe Open may spend.
	if got := r["queries"].(float64) + r["probe_queries"].(float64); int64(got) != srv.Examples() {
		t.Errorf("reported %v queries (+%v probe), the server saw %d examples", r["queries"], r["probe_queries"], srv.Examples())
	}
	if r["success_rate"].(float64) == 0 {
		t.Error("hsja broke nothing")
	}

	// A white-box attack against an endpoint is refused, saying why.
	code, _, stderr = run(t, "attack", "--model", url, "--data", "fashion-mnist", "--attack", "pgd", "--eps", "0.1", "--n", "5")
	if code != 2 || !strings.Contains(stderr, "needs input gradients") {
		t.Errorf("pgd on an endpoint: exit %d, %s", code, stderr)
	}
	// A budget is never exceeded.
	before := srv.Examples()
	code, stdout, _ = run(t, "attack", "--model", url, "--data", "fashion-mnist", "--attack", "square", "--eps", "0.1", "--n", "10", "--budget", "150", "--json")
	if seen := srv.Examples() - before; seen > 150 {
		t.Errorf("the server saw %d examples with --budget 150", seen)
	}
	if code != 1 || !decodeJSON(t, stdout)["partial"].(bool) {
		t.Errorf("budget run: exit %d, %s", code, stdout)
	}

	// assess against the endpoint: the black-box profile runs, and a
	// white-box check is skipped with the reason in the report.
	out := filepath.Join(dir, "remote-report")
	prof := filepath.Join(dir, "mixed.yaml")
	os.WriteFile(prof, []byte("norm: inf\neps: [0.1]\nchecks:\n  - attack: fgsm\n  - attack: square\n    params: {queries: 200}\n  - attack: hsja\n    norm: '2'\n    eps: [2.0]\n    params: {queries: 200}\n"), 0o644)
	code, _, stderr = run(t, "assess", "--model", url, "--data", "fashion-mnist", "--profile", prof, "--n", "10", "--out", out, "-q")
	if code != 0 {
		t.Fatalf("assess on an endpoint: exit %d: %s", code, stderr)
	}
	rep := string(mustReadFile(t, filepath.Join(out, "report.json")))
	for _, want := range []string{`"format": "remote"`, `"status": "skipped"`, "needs input gradients", `"attack": "evasion.square"`, "AML.T0040"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report.json lacks %s", want)
		}
	}

	// A server that answers garbage.
	srv.Set(oiptest.Malformed())
	code, _, stderr = run(t, "attack", "--model", url, "--data", "fashion-mnist", "--attack", "square", "--eps", "0.1", "--n", "5")
	if code != 2 || !strings.Contains(stderr, url) {
		t.Errorf("malformed responses: exit %d, %s", code, stderr)
	}
}

func TestAttackBadInput(t *testing.T) {
	dir := t.TempDir()
	m := trainSmall(t, dir)
	cases := map[string]struct {
		args []string
		want string
	}{
		"eps out of range": {[]string{"--attack", "pgd", "--norm", "inf", "--eps", "2"}, "larger than"},
		"negative eps":     {[]string{"--attack", "pgd", "--eps", "-0.1"}, "eps"},
		"unsupported norm": {[]string{"--attack", "square", "--norm", "1", "--eps", "1"}, "does not support"},
		"unknown attack":   {[]string{"--attack", "nosuch", "--eps", "0.1"}, "unknown attack"},
		"zero queries":     {[]string{"--attack", "square", "--eps", "0.1", "--queries", "0"}, "budget of zero"},
		"zero budget":      {[]string{"--attack", "square", "--eps", "0.1", "--budget", "0"}, "zero"},
		"outside clip":     {[]string{"--attack", "fgsm", "--eps", "0.1", "--clip", "0.2,0.8"}, "outside the model's input range"},
		"unreachable":      {[]string{"--attack", "square", "--eps", "0.1", "--model", "http://127.0.0.1:1/v2/models/x"}, "127.0.0.1:1"},
		"bad defense":      {[]string{"--attack", "fgsm", "--eps", "0.1", "--defense", "jpeg:75"}, "--defense"},
		"no such model":    {[]string{"--attack", "fgsm", "--eps", "0.1", "--model", filepath.Join(dir, "nope.onnx")}, "nope.onnx"},
	}
	for name, tc := range cases {
		args := append([]string{"attack", "--model", m, "--data", "fashion-mnist", "--n", "5"}, tc.args...)
		code, _, stderr := run(t, args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q (want %q)", name, code, stderr, tc.want)
		}
	}
}

func TestAssessCommand(t *testing.T) {
	dir := t.TempDir()
	m := trainSmall(t, dir)
	pass := filepath.Join(dir, "pass.yaml")
	fail := filepath.Join(dir, "fail.yaml")
	os.WriteFile(pass, []byte("rules:\n  - clean_accuracy >= 0.5\n  - robust_accuracy{attack=fgsm,eps=0.05} <= 1\n"), 0o644)
	os.WriteFile(fail, []byte("rules:\n  - robust_accuracy{attack=pgd,eps=0.1} >= 0.9\n"), 0o644)
	out := filepath.Join(dir, "rep")
	code, stdout, stderr := run(t, "assess", "--model", m, "--data", "fashion-mnist", "--profile", "quick", "--n", "60",
		"--out", out, "--policy", pass, "-q")
	if code != 0 {
		t.Fatalf("assess exit %d: %s\n%s", code, stderr, stdout)
	}
	for _, f := range []string{"report.json", "report.html", "report.sarif", "report.md"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	var rep struct {
		SchemaVersion string `json:"schema_version"`
		Status        string `json:"status"`
		Command       string `json:"command"`
		Dataset       struct {
			Fingerprint string `json:"fingerprint"`
			Indices     []int  `json:"indices"`
		} `json:"dataset"`
		Attacks []json.RawMessage `json:"attacks"`
	}
	if err := json.Unmarshal(mustReadFile(t, filepath.Join(out, "report.json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.SchemaVersion == "" || rep.Status != "complete" || len(rep.Attacks) != 6 || len(rep.Dataset.Indices) != 60 ||
		!strings.HasPrefix(rep.Dataset.Fingerprint, "sha256:") || !strings.Contains(rep.Command, "--profile quick") {
		t.Errorf("report.json: %+v", rep)
	}
	if !strings.Contains(stdout, "ROBUST") {
		t.Errorf("no table on stdout:\n%s", stdout)
	}
	code, _, stderr = run(t, "assess", "--model", m, "--data", "fashion-mnist", "--profile", "quick", "--n", "60",
		"--out", out, "--policy", fail, "-q")
	if code != 1 || !strings.Contains(stderr, "policy") {
		t.Errorf("failing policy: exit %d: %s", code, stderr)
	}
	// --compare: a second model assessed on the same examples, side by side.
	m2 := filepath.Join(dir, "mlp2.safetensors")
	// Trained with noise augmentation, so the comparison certifies it.
	if code, _, stderr := run(t, "train", "--data", "fashion-mnist", "--arch", "logreg", "--epochs", "1", "--n", "2000",
		"--defense", "gaussian", "--sigma", "0.25", "--out", m2, "-q"); code != 0 {
		t.Fatalf("train: %s", stderr)
	}
	cmp := filepath.Join(dir, "cmp")
	if code, _, stderr := run(t, "assess", "--model", m, "--compare", m2, "--data", "fashion-mnist", "--profile", "quick", "--n", "40", "--out", cmp, "-q"); code != 0 {
		t.Fatalf("--compare: exit %d: %s", code, stderr)
	}
	var cr struct {
		Comparison []struct {
			Label     string `json:"label"`
			WorstCase []struct {
				Eps float64 `json:"eps"`
			} `json:"worst_case"`
			Report            string             `json:"report"`
			CertifiedAccuracy map[string]float64 `json:"certified_accuracy"`
			Certification     *struct {
				Sigma    float64 `json:"sigma"`
				Examples int     `json:"examples"`
				Samples  int     `json:"samples"`
			} `json:"certification"`
		} `json:"comparison"`
	}
	if err := json.Unmarshal(mustReadFile(t, filepath.Join(cmp, "report.json")), &cr); err != nil {
		t.Fatal(err)
	}
	if len(cr.Comparison) != 2 || cr.Comparison[1].Label != "mlp2.safetensors" || len(cr.Comparison[1].WorstCase) < 2 {
		t.Fatalf("comparison: %+v", cr.Comparison)
	}
	c0, c1 := cr.Comparison[0], cr.Comparison[1]
	if c0.CertifiedAccuracy != nil || c0.Certification != nil {
		t.Errorf("the model without noise augmentation was certified: %+v", c0)
	}
	if c := c1.Certification; c == nil || c.Sigma != 0.25 || c.Examples != 40 || c.Samples != 2000 || len(c1.CertifiedAccuracy) != 5 ||
		!(c1.CertifiedAccuracy["0"] > 0.2) || c1.CertifiedAccuracy["0.5"] > c1.CertifiedAccuracy["0"] {
		t.Errorf("certification of the noise-augmented model: %+v %+v", c1.Certification, c1.CertifiedAccuracy)
	}
	if md := string(mustReadFile(t, filepath.Join(cmp, "report.md"))); !strings.Contains(md, "Certified (L2 radius: accuracy)") || !strings.Contains(md, "σ = 0.25") {
		t.Error("report.md has no certified accuracy")
	}
	if _, err := os.Stat(filepath.Join(cmp, cr.Comparison[1].Report)); err != nil {
		t.Errorf("the compared model's report: %v", err)
	}
	if html := string(mustReadFile(t, filepath.Join(cmp, "report.html"))); !strings.Contains(html, `id="comparison-table"`) {
		t.Error("report.html has no comparison table")
	}

	// A time budget that runs out gives a partial report.
	code, _, stderr = run(t, "assess", "--model", m, "--data", "fashion-mnist", "--profile", "quick", "--n", "60",
		"--out", out, "--time-budget", "0.000001", "-q")
	if code != 0 || !strings.Contains(stderr, "partial") {
		t.Errorf("time budget: exit %d: %s", code, stderr)
	}
	if !strings.Contains(string(mustReadFile(t, filepath.Join(out, "report.json"))), `"status": "partial"`) {
		t.Error("report.json is not marked partial")
	}
	// Bad profile and bad policy are input errors.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("norm: inf\neps: [0.1]\nchecks: [{attack: fgsm}]\nsteps: 3\n"), 0o644)
	if code, _, stderr = run(t, "assess", "--model", m, "--data", "fashion-mnist", "--profile", bad, "--out", out); code != 2 || !strings.Contains(stderr, "steps") {
		t.Errorf("bad profile: exit %d: %s", code, stderr)
	}
	os.WriteFile(bad, []byte("rules:\n  - robust_accuracy{attack=fgsm >= 0.5\n"), 0o644)
	if code, _, stderr = run(t, "assess", "--model", m, "--data", "fashion-mnist", "--policy", bad, "--out", out); code != 2 || !strings.Contains(stderr, "bad.yaml") {
		t.Errorf("bad policy: exit %d: %s", code, stderr)
	}
}
