package model

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/model/safetensors"
	"github.com/bulwark-sec/bulwark/nn"
)

func testModel(t *testing.T) (*nn.Graph, Meta) {
	t.Helper()
	g, err := nn.Build("cnn", []int{1, 8, 8}, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	return g, Meta{Arch: "cnn", Classes: []string{"x", "y", "z"}, Preprocess: Preprocess{Scale: 1.0 / 255, Layout: "NCHW", Range: &[2]float32{0, 1}},
		Provenance: Provenance{Dataset: "d", Seed: 5}}
}

func TestNativeRoundTrip(t *testing.T) {
	g, meta := testModel(t)
	p := filepath.Join(t.TempDir(), "m.safetensors")
	if err := SaveNative(p, g, meta); err != nil {
		t.Fatal(err)
	}
	m, err := Load(p, "")
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != "native" || m.Meta.Arch != "cnn" || m.Meta.Classes[1] != "y" || m.Net.NumClasses() != 3 {
		t.Fatalf("loaded %+v", m.Meta)
	}
	got, err := m.Net.Params()
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range g.Params {
		for j, v := range p.Data {
			if got.Params[i].Data[j] != v {
				t.Fatalf("parameter %s[%d] changed on the way through the file", p.Name, j)
			}
		}
	}
}

// rewrite saves a model, lets edit change its tensors or metadata, and
// writes the result as a (valid) safetensors file.
func rewrite(t *testing.T, edit func(ts []safetensors.Tensor, md map[string]string) []safetensors.Tensor) string {
	t.Helper()
	g, meta := testModel(t)
	p := filepath.Join(t.TempDir(), "m.safetensors")
	if err := SaveNative(p, g, meta); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	ts := edit(f.Tensors, f.Metadata)
	if err := safetensors.WriteFile(p, ts, f.Metadata); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNativeLoadIsStrict(t *testing.T) {
	cases := map[string]struct {
		edit func(ts []safetensors.Tensor, md map[string]string) []safetensors.Tensor
		want string
	}{
		"missing tensor": {func(ts []safetensors.Tensor, md map[string]string) []safetensors.Tensor { return ts[1:] }, "has no tensor"},
		"extra tensor": {func(ts []safetensors.Tensor, md map[string]string) []safetensors.Tensor {
			return append(ts, safetensors.F32("payload", []int{2}, []float32{1, 2}))
		}, "not used by the graph: payload"},
		"wrong shape": {func(ts []safetensors.Tensor, md map[string]string) []safetensors.Tensor {
			for i := range ts {
				if len(ts[i].Shape) > 1 {
					ts[i].Shape = []int{len(ts[i].Data) / 4}
					break
				}
			}
			return ts
		}, "has shape"},
		"no bulwark metadata": {func(ts []safetensors.Tensor, md map[string]string) []safetensors.Tensor {
			delete(md, keyGraph)
			return ts
		}, "not a bulwark model"},
		"unknown field": {func(ts []safetensors.Tensor, md map[string]string) []safetensors.Tensor {
			md[keyMeta] = strings.Replace(md[keyMeta], `{"format"`, `{"evil":1,"format"`, 1)
			return ts
		}, "unknown field"},
		"graph uses undefined value": {func(ts []safetensors.Tensor, md map[string]string) []safetensors.Tensor {
			md[keyGraph] = strings.Replace(md[keyGraph], `"inputs":["input"`, `"inputs":["nowhere"`, 1)
			return ts
		}, "before it is defined"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := rewrite(t, tc.edit)
			_, err := Load(p, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %v, want one naming %s and saying %q", err, p, tc.want)
			}
		})
	}
}

func TestPickleFilesAreNeverLoaded(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, p := range []string{
		write("model.pt", []byte("PK\x03\x04rest")),
		write("model.pkl", []byte{0x80, 0x04, 0x95}),
		write("renamed.onnx", []byte{0x80, 0x02, 'c', 'o', 's'}),
		write("zip.safetensors", []byte("PK\x03\x04rest")),
	} {
		_, err := Load(p, "")
		var pe *ErrPickle
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "bulwark scan") {
			t.Errorf("%s: got %v, want a pickle refusal that points to bulwark scan", p, err)
		}
	}
	if _, err := Load(write("x.h5", []byte("hdf")), ""); err == nil || !strings.Contains(err.Error(), "unknown model format") {
		t.Errorf("unknown extension: %v", err)
	}
}

func TestCheckInput(t *testing.T) {
	g, meta := testModel(t)
	p := filepath.Join(t.TempDir(), "m.safetensors")
	if err := SaveNative(p, g, meta); err != nil {
		t.Fatal(err)
	}
	m, err := Load(p, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range [][]int{{1, 8, 8}, {8, 8}, {64}} {
		if err := m.CheckInput(ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, bad := range [][]int{{3, 8, 8}, {1, 4, 16}, {63}} {
		if err := m.CheckInput(bad); err == nil {
			t.Errorf("%v accepted for a [1 8 8] model", bad)
		}
	}
}
