package scan

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The corpus under testdata/corpus is built by testdata/make_corpus.py; its
// manifest says, for each file or folder, the severity the scanner must
// reach at least ("MEDIUM", "HIGH", "CRITICAL") or "BENIGN" (nothing at
// MEDIUM or above).

type manifestEntry struct {
	Expect string `json:"expect"`
	What   string `json:"what"`
}

func loadManifest(t *testing.T) map[string]manifestEntry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "corpus", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]manifestEntry
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "_note")
	return m
}

func TestCorpus(t *testing.T) {
	m := loadManifest(t)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := New(Options{})
	var malicious, detected, benign, falsePositives int
	var table strings.Builder
	for _, k := range keys {
		e := m[k]
		rep, err := s.Scan(context.Background(), filepath.Join("testdata", "corpus", filepath.FromSlash(k)))
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		got := rep.Max()
		if len(rep.Scanned) == 0 {
			t.Errorf("%s: nothing was scanned (skipped: %v)", k, rep.Skipped)
		}
		if e.Expect == "BENIGN" {
			benign++
			if got >= SeverityMedium {
				falsePositives++
				t.Errorf("%s (benign: %s) reported at %s:", k, e.What, got)
				for _, f := range rep.Findings {
					t.Errorf("    %s %s %s", f.Severity, f.Rule, f.Message)
				}
			}
		} else {
			malicious++
			want, err := ParseSeverity(e.Expect)
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			if got >= want {
				detected++
			} else {
				t.Errorf("%s (%s): got %s, want at least %s", k, e.What, got, want)
			}
		}
		table.WriteString(k + "\t" + e.Expect + "\t" + got.String() + "\n")
	}
	t.Logf("corpus: recall %d/%d malicious, false positives %d/%d benign\n%s", detected, malicious, falsePositives, benign, table.String())
	if malicious < 50 || benign < 30 {
		t.Errorf("corpus too small: %d malicious, %d benign", malicious, benign)
	}

	// Every file of the corpus is covered by the manifest, itself or
	// through its folder.
	root := filepath.Join("testdata", "corpus")
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "manifest.json" {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
		for k := range m {
			if rel == k || strings.HasPrefix(rel, k+"/") {
				return nil
			}
		}
		t.Errorf("%s is not in the manifest", rel)
		return nil
	})
}

// TestCorpusFindings pins the rules and callables reported for a few
// corpus files, so that a regression in resolution shows even when the
// severity stays the same.
func TestCorpusFindings(t *testing.T) {
	cases := map[string][]string{
		"malicious/pickle/memo_stack_global.pkl":              {"scan.pickle.call.dangerous os.system"},
		"malicious/pickle/getattr_chain.pkl":                  {"scan.pickle.call.dangerous os.system"},
		"malicious/pickle/operator_attrgetter.pkl":            {"scan.pickle.call.dangerous os.system"},
		"malicious/pickle/operator_methodcaller.pkl":          {"scan.pickle.call.dangerous os.system"},
		"malicious/pickle/functools_partial.pkl":              {"scan.pickle.call.dangerous os.system", "scan.pickle.call.dangerous functools.partial"},
		"malicious/pickle/importlib_import_module.pkl":        {"scan.pickle.call.dangerous subprocess.getoutput"},
		"malicious/pickle/ctypes_cdll.pkl":                    {"scan.pickle.call.dangerous ctypes.CDLL"},
		"malicious/pickle/numpy_builtins.pkl":                 {"scan.pickle.call.dangerous numpy.__builtins__.eval"},
		"malicious/pickle/nested_pickle_loads.pkl":            {"scan.pickle.call.dangerous pickle.loads", "scan.pickle.call.dangerous os.system"},
		"malicious/pickle/torch_load_bytesio.pkl":             {"scan.pickle.call.dangerous os.system"},
		"malicious/pytorch/zip_inject_data_pkl.pt":            {"scan.pickle.call.dangerous os.system"},
		"malicious/pytorch/zip_extra_pkl.pt":                  {"scan.pickle.call.dangerous os.system"},
		"malicious/pytorch/legacy_stacked_inject.pt":          {"scan.pickle.call.dangerous os.system"},
		"malicious/pytorch/zip_named_safetensors.safetensors": {"scan.format-mismatch", "scan.pickle.call.dangerous os.system"},
		"malicious/safetensors/polyglot_pickle.safetensors":   {"scan.safetensors.polyglot", "scan.pickle.call.dangerous os.system"},
		"malicious/numpy/object_payload.npz":                  {"scan.pickle.call.dangerous os.system"},
		"malicious/onnx/external_data_escape.onnx":            {"scan.onnx.external-data"},
		"malicious/onnx/custom_domain.onnx":                   {"scan.onnx.custom-domain com.evil.ops.Backdoor"},
		"malicious/onnx/tensor_size_mismatch.onnx":            {"scan.onnx.tensor-size"},
		"malicious/archives/zip_bomb.zip":                     {"scan.archive.bomb"},
		"malicious/gguf/bad_offset.gguf":                      {"scan.gguf.out-of-bounds"},
		"malicious/keras/lambda.h5":                           {"scan.keras.lambda keras.layers.Lambda"},
		"malicious/savedmodel_readfile":                       {"scan.tf.dangerous-op"},
		"malicious/limits/truncated_length.pkl":               {"scan.unparseable"},
	}
	s := New(Options{})
	for path, want := range cases {
		rep, err := s.Scan(context.Background(), filepath.Join("testdata", "corpus", filepath.FromSlash(path)))
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, f := range rep.Findings {
			have[f.Rule] = true
			have[f.Rule+" "+f.Callable()] = true
		}
		for _, w := range want {
			if !have[w] {
				t.Errorf("%s: no %q among %v", path, w, have)
			}
		}
	}
}
