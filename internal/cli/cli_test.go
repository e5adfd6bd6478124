package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/data"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Execute(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func needFashionMNIST(t *testing.T) {
	if _, err := data.Info("fashion-mnist"); err != nil {
		t.Skipf("fashion-mnist not installed: %v", err)
	}
}

func writeCSV(t *testing.T, path string, rows int, labels func(i int) int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("f1,f2,label\n")
	for i := 0; i < rows; i++ {
		y := labels(i)
		fmt.Fprintf(&b, "%d.5,%d.25,%d\n", y*3+i%2, -y, y)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTrainEvalPredictOnFashionMNIST(t *testing.T) {
	needFashionMNIST(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "m.safetensors")
	code, stdout, stderr := run(t, "train", "--data", "fashion-mnist", "--arch", "mlp", "--epochs", "1", "--n", "1200", "--out", out, "--json")
	if code != 0 {
		t.Fatalf("train exit %d: %s", code, stderr)
	}
	var tr map[string]any
	if err := json.Unmarshal([]byte(stdout), &tr); err != nil {
		t.Fatalf("train --json is not one JSON object: %v\n%s", err, stdout)
	}
	if _, err := os.Stat(out + ".ckpt"); !os.IsNotExist(err) {
		t.Error("checkpoint left behind after a finished run")
	}

	code, stdout, stderr = run(t, "eval", "--model", out, "--data", "fashion-mnist", "--split", "test", "--n", "500", "--json")
	if code != 0 {
		t.Fatalf("eval exit %d: %s", code, stderr)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(stdout), &ev); err != nil {
		t.Fatalf("eval --json: %v\n%s", err, stdout)
	}
	for _, k := range []string{"accuracy", "loss", "n", "model", "data", "ece", "per_class", "confusion"} {
		if _, ok := ev[k]; !ok {
			t.Errorf("eval --json lacks %q", k)
		}
	}
	if ev["n"].(float64) != 500 || ev["accuracy"].(float64) < 0.5 {
		t.Errorf("eval: n=%v accuracy=%v", ev["n"], ev["accuracy"])
	}

	// A test image as a PNG, the way a user would have one.
	d, err := data.Load("fashion-mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	img := image.NewGray(image.Rect(0, 0, 28, 28))
	for i, v := range d.Example(1) {
		img.Pix[i] = uint8(v*255 + 0.5)
	}
	pngPath := filepath.Join(dir, "x.png")
	f, _ := os.Create(pngPath)
	png.Encode(f, img)
	f.Close()
	code, stdout, stderr = run(t, "predict", "--model", out, "--input", pngPath, "--json")
	if code != 0 {
		t.Fatalf("predict exit %d: %s", code, stderr)
	}
	var pr map[string]any
	if err := json.Unmarshal([]byte(stdout), &pr); err != nil {
		t.Fatalf("predict --json: %v\n%s", err, stdout)
	}
	if p := pr["probability"].(float64); p <= 0 || p > 1 {
		t.Errorf("probability %v", p)
	}
	// An RGB image of the wrong size is refused with its size named.
	big := image.NewRGBA(image.Rect(0, 0, 32, 30))
	big.Set(1, 1, color.RGBA{255, 0, 0, 255})
	f, _ = os.Create(filepath.Join(dir, "big.png"))
	png.Encode(f, big)
	f.Close()
	code, _, stderr = run(t, "predict", "--model", out, "--input", filepath.Join(dir, "big.png"))
	if code != 2 || !strings.Contains(stderr, "32x30") {
		t.Errorf("wrong-size image: exit %d, %s", code, stderr)
	}
}

func TestBadInputExitsTwoAndWritesNothing(t *testing.T) {
	dir := t.TempDir()
	train := filepath.Join(dir, "train.csv")
	writeCSV(t, train, 60, func(i int) int { return i % 2 })
	out := filepath.Join(dir, "tab.safetensors")
	if code, _, stderr := run(t, "train", "--data", train, "--arch", "logreg", "--epochs", "2", "--out", out); code != 0 {
		t.Fatalf("train on CSV: %s", stderr)
	}
	wide := filepath.Join(dir, "wide.csv")
	writeCSV(t, wide, 30, func(i int) int { return i % 6 })

	corrupt := filepath.Join(dir, "corrupt.safetensors")
	b, _ := os.ReadFile(out)
	os.WriteFile(corrupt, b[:len(b)/2], 0o644)

	nanCSV := filepath.Join(dir, "nan.csv")
	os.WriteFile(nanCSV, []byte("a,b,label\n1,2,0\nNaN,1,1\n1,1,0\n2,2,1\n"), 0o644)

	cases := []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--model", filepath.Join(dir, "missing.safetensors"), "--data", train}, "missing.safetensors"},
		{[]string{"eval", "--model", corrupt, "--data", train}, "corrupt.safetensors"},
		{[]string{"eval", "--model", out, "--data", wide}, "only 2 classes"},
		{[]string{"eval", "--model", out, "--data", nanCSV}, "NaN"},
		{[]string{"train", "--data", nanCSV, "--arch", "logreg", "--out", filepath.Join(dir, "never.safetensors")}, "NaN"},
		{[]string{"train", "--data", train, "--arch", "cnn", "--out", filepath.Join(dir, "never.safetensors")}, "image input"},
		{[]string{"train", "--data", train, "--arch", "nope", "--out", filepath.Join(dir, "never.safetensors")}, "unknown architecture"},
		{[]string{"train", "--data", train, "--epochs", "0", "--out", filepath.Join(dir, "never.safetensors")}, "epochs"},
		{[]string{"eval", "--model", out}, "required"},
		{[]string{"eval", "--bogus-flag"}, "unknown flag"},
	}
	for _, tc := range cases {
		code, _, stderr := run(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, stderr, tc.want)
		}
		if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine") {
			t.Errorf("%v: %s", tc.args, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "never.safetensors")); !os.IsNotExist(err) {
		t.Error("a failed training run left an output file")
	}
}

func TestModelsAndVersion(t *testing.T) {
	code, stdout, _ := run(t, "models", "--json")
	if code != 0 {
		t.Fatal(code)
	}
	for _, a := range []string{"logreg", "mlp", "cnn", "lenet", "resnet-mini"} {
		if !strings.Contains(stdout, `"`+a+`"`) {
			t.Errorf("models lacks %s", a)
		}
	}
	code, stdout, _ = run(t, "version")
	if code != 0 || !strings.Contains(stdout, "engine") {
		t.Errorf("version: %d %s", code, stdout)
	}
}

// TestEvalONNXExportedFromPyTorch: a [1, 28, 28] NCHW ONNX classifier takes
// the dataset's images as they are, and a truncated file is refused.
func TestEvalONNXExportedFromPyTorch(t *testing.T) {
	needFashionMNIST(t)
	const onnxModel = "../../testdata/onnx/cnn.onnx"
	code, stdout, stderr := run(t, "eval", "--model", onnxModel, "--data", "fashion-mnist", "--n", "64", "--json")
	if code != 0 {
		t.Fatalf("eval of ONNX: exit %d: %s", code, stderr)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(stdout), &ev); err != nil || ev["format"] != "onnx" || ev["n"].(float64) != 64 {
		t.Fatalf("eval --json of ONNX: %v %s", err, stdout)
	}
	b, err := os.ReadFile(onnxModel)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.onnx")
	os.WriteFile(cut, b[:len(b)/3], 0o644)
	code, _, stderr = run(t, "eval", "--model", cut, "--data", "fashion-mnist", "--n", "8")
	if code != 2 || !strings.Contains(stderr, "cut.onnx") {
		t.Errorf("truncated ONNX: exit %d, %s", code, stderr)
	}
}

func TestBOMCommand(t *testing.T) {
	code, stdout, stderr := run(t, "bom", "../../testdata/onnx/cnn.onnx")
	if code != 0 || !strings.Contains(stdout, `"specVersion": "1.6"`) || !strings.Contains(stdout, "machine-learning-model") {
		t.Fatalf("bom: exit %d, %s %s", code, stdout, stderr)
	}
	out := filepath.Join(t.TempDir(), "x.cdx.json")
	if code, _, stderr := run(t, "bom", "../../testdata/onnx", "--out", out); code != 0 {
		t.Fatalf("bom --out: %s", stderr)
	}
	var doc map[string]any
	if err := json.Unmarshal(mustReadFile(t, out), &doc); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := run(t, "bom", "no-such-dir"); code != 2 {
		t.Errorf("missing path: exit %d", code)
	}
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
