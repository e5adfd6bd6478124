package bom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/model"
	"github.com/bulwark-sec/bulwark/nn"
)

func TestBOMOfAModelFolder(t *testing.T) {
	dir := t.TempDir()
	g, err := nn.Build("mlp", []int{4}, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	fp := "sha256:" + hex.EncodeToString(make([]byte, 32))
	meta := model.Meta{Arch: "mlp", Classes: []string{"a", "b", "c"}, Preprocess: model.Preprocess{Scale: 1, Layout: "features"},
		Provenance: model.Provenance{Dataset: "blobs", DatasetFingerprint: fp, Split: "train", Seed: 7, Epochs: 2,
			Optimizer: nn.Optimizer{Name: "adam"}, Metrics: map[string]float64{"val_accuracy": 0.9}}}
	if err := model.SaveNative(filepath.Join(dir, "m.safetensors"), g, meta); err != nil {
		t.Fatal(err)
	}
	onnxBytes, err := os.ReadFile("../testdata/onnx/mlp.onnx")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "exported.onnx"), onnxBytes, 0o644)
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("card"), 0o644)

	b, err := Build(dir, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Write(&out, b); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
		Components  []struct {
			Type      string `json:"type"`
			Name      string `json:"name"`
			Ref       string `json:"bom-ref"`
			Hashes    []struct{ Alg, Content string }
			ModelCard *struct {
				ModelParameters struct {
					ArchitectureFamily string `json:"architectureFamily"`
					Datasets           []struct {
						Ref string `json:"ref"`
					} `json:"datasets"`
				} `json:"modelParameters"`
			} `json:"modelCard"`
		} `json:"components"`
		Dependencies []struct {
			Ref       string   `json:"ref"`
			DependsOn []string `json:"dependsOn"`
		} `json:"dependencies"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.BOMFormat != "CycloneDX" || doc.SpecVersion != "1.6" {
		t.Fatalf("format %q version %q", doc.BOMFormat, doc.SpecVersion)
	}
	byName := map[string]int{}
	for i, c := range doc.Components {
		byName[c.Name] = i
	}
	for _, name := range []string{"m.safetensors", "sub/exported.onnx", "README.md"} {
		i, ok := byName[name]
		if !ok {
			t.Fatalf("no component for %s: %s", name, out.String())
		}
		want := sha256.Sum256(mustRead(t, filepath.Join(dir, filepath.FromSlash(name))))
		c := doc.Components[i]
		if len(c.Hashes) != 1 || c.Hashes[0].Alg != "SHA-256" || c.Hashes[0].Content != hex.EncodeToString(want[:]) {
			t.Errorf("%s: hashes %+v", name, c.Hashes)
		}
	}
	native := doc.Components[byName["m.safetensors"]]
	if native.Type != "machine-learning-model" || native.ModelCard == nil || native.ModelCard.ModelParameters.ArchitectureFamily != "mlp" {
		t.Errorf("native model component: %+v", native)
	}
	if ds := native.ModelCard.ModelParameters.Datasets; len(ds) != 1 || ds[0].Ref != "data:"+fp {
		t.Errorf("datasets of the model card: %+v", ds)
	}
	if doc.Components[byName["sub/exported.onnx"]].Type != "machine-learning-model" || doc.Components[byName["README.md"]].Type != "file" {
		t.Error("component types")
	}
	data, ok := byName["blobs"]
	if !ok || doc.Components[data].Type != "data" || doc.Components[data].Hashes[0].Content != hex.EncodeToString(make([]byte, 32)) {
		t.Errorf("dataset component missing or without its fingerprint: %s", out.String())
	}
	linked := false
	for _, d := range doc.Dependencies {
		if d.Ref == native.Ref && len(d.DependsOn) == 1 && d.DependsOn[0] == "data:"+fp {
			linked = true
		}
	}
	if !linked {
		t.Errorf("model does not depend on its dataset: %+v", doc.Dependencies)
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBOMOfMissingPath(t *testing.T) {
	if _, err := Build(filepath.Join(t.TempDir(), "nope"), time.Now()); err == nil {
		t.Error("missing path accepted")
	}
}
