package scan

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var evilPickle = []byte("\x80\x02cposix\nsystem\n\x8c\x04echo\x85R.")

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func scanPaths(t *testing.T, opts Options, paths ...string) *Report {
	t.Helper()
	rep, err := New(opts).Scan(context.Background(), paths...)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func hasRule(rep *Report, rule string) *Finding {
	for i := range rep.Findings {
		if rep.Findings[i].Rule == rule {
			return &rep.Findings[i]
		}
	}
	return nil
}

func TestMissingPathIsInputError(t *testing.T) {
	_, err := New(Options{}).Scan(context.Background(), filepath.Join(t.TempDir(), "nope"))
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("want *InputError, got %v", err)
	}
}

func TestSymlinks(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	tree := filepath.Join(base, "tree")
	writeFile(t, filepath.Join(outside, "evil.pkl"), evilPickle)
	writeFile(t, filepath.Join(tree, "ok.pkl"), []byte("\x80\x02N."))
	if err := os.Symlink(filepath.Join(outside, "evil.pkl"), filepath.Join(tree, "link.pkl")); err != nil {
		t.Skip("symlinks not supported:", err)
	}
	if err := os.Symlink(outside, filepath.Join(tree, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(tree, "ok.pkl"), filepath.Join(tree, "inside.pkl")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(tree, filepath.Join(tree, "loop")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "missing"), filepath.Join(tree, "broken")); err != nil {
		t.Fatal(err)
	}

	rep := scanPaths(t, Options{}, tree)
	if rep.Max() != SeverityLow || hasRule(rep, "scan.symlink.outside") == nil {
		t.Errorf("links out of the tree must be reported and not followed: %+v", rep.Findings)
	}
	if len(rep.Scanned) != 1 {
		t.Errorf("scanned %v, want only ok.pkl", rep.Scanned)
	}
	rep = scanPaths(t, Options{FollowSymlinks: true}, tree)
	if rep.Max() != SeverityCritical {
		t.Errorf("followed links: max %s, findings %+v", rep.Max(), rep.Findings)
	}
	// The evil file is reached twice (as a file link and through the
	// folder link); the loop back into the tree is not walked again.
	if len(rep.Scanned) != 3 {
		t.Errorf("scanned %v", rep.Scanned)
	}
}

func TestSpecialFilesAndReadErrors(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.pkl")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no FIFOs:", err)
	}
	done := make(chan *Report)
	go func() { done <- scanPaths(t, Options{}, dir) }()
	select {
	case rep := <-done:
		if len(rep.Skipped) != 1 || rep.Max() != SeveritySafe {
			t.Errorf("FIFO: %+v", rep)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("scanning a folder with a FIFO hangs")
	}

	// A reader that fails mid-file is reported, not passed as clean.
	rep := New(Options{}).ScanReader(context.Background(), "x.pkl", failingReader{after: 10, data: evilPickle}, int64(len(evilPickle)))
	if hasRule(rep, "scan.io.unreadable") == nil || len(rep.Errors) != 1 {
		t.Errorf("read error: %+v", rep)
	}
}

type failingReader struct {
	after int64
	data  []byte
}

func (f failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.after {
		n := 0
		if off < f.after {
			n = copy(p, f.data[off:f.after])
		}
		return n, errors.New("disk on fire")
	}
	return copy(p, f.data[off:]), nil
}

// TestTruncatedFilesAreNeverClean cuts valid files of every format and
// checks that the scanner says so.
func TestTruncatedFilesAreNeverClean(t *testing.T) {
	root := filepath.Join("testdata", "corpus", "benign")
	for _, name := range []string{
		"pickle/builtins_p2.pkl", "pickle/builtins_p0.pkl", "pytorch/state_dict.pt", "pytorch/state_dict_legacy.pt",
		"numpy/float.npy", "numpy/object_benign.npy", "numpy/arrays.npz", "safetensors/model.safetensors",
		"gguf/model.gguf", "onnx/model.onnx", "archives/pickle.tar.gz", "keras/dense.keras",
		"joblib/arrays.joblib", "joblib/arrays_zlib.joblib", "pytorch/torchscript.pt", "sklearn/forest.joblib",
	} {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		for _, cut := range []int{len(b) / 3, len(b) - 7} {
			rep := New(Options{}).ScanBytes(context.Background(), filepath.Base(name), b[:cut])
			if rep.Max() < SeverityMedium {
				t.Errorf("%s cut to %d of %d bytes: max %s, findings %+v", name, cut, len(b), rep.Max(), rep.Findings)
			}
		}
	}
}

func TestStoredZipEntryOffsetsMapToTheFile(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "archive/data.pkl", Method: zip.Store})
	w.Write(evilPickle)
	zw.Close()
	b := buf.Bytes()
	rep := New(Options{}).ScanBytes(context.Background(), "m.pt", b)
	f := hasRule(rep, "scan.pickle.global.dangerous")
	if f == nil || f.Entry != "archive/data.pkl" || f.Offset != 2 {
		t.Fatalf("finding %+v", f)
	}
	if f.FileOffset < 0 || b[f.FileOffset] != 'c' {
		t.Errorf("file offset %d does not point at the GLOBAL opcode", f.FileOffset)
	}

	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "x/pickle", Size: int64(len(evilPickle)), Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Write(evilPickle)
	tw.Close()
	b = tb.Bytes()
	rep = New(Options{}).ScanBytes(context.Background(), "m.tar", b)
	f = hasRule(rep, "scan.pickle.global.dangerous")
	if f == nil || f.FileOffset < 0 || b[f.FileOffset] != 'c' {
		t.Errorf("tar finding %+v", f)
	}
}

func TestArchiveLimits(t *testing.T) {
	// Nesting deeper than MaxDepth is reported, not followed.
	data := evilPickle
	name := "evil.pkl"
	for i := 0; i < 4; i++ {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create(name)
		w.Write(data)
		zw.Close()
		data, name = buf.Bytes(), "level.zip"
	}
	rep := New(Options{Limits: Limits{MaxDepth: 2}}).ScanBytes(context.Background(), "deep.zip", data)
	if hasRule(rep, "scan.archive.limit") == nil || hasRule(rep, "scan.pickle.global.dangerous") != nil {
		t.Errorf("depth limit: %+v", rep.Findings)
	}
	rep = New(Options{}).ScanBytes(context.Background(), "deep.zip", data)
	if rep.Max() != SeverityCritical {
		t.Errorf("within the depth limit: %+v", rep.Findings)
	}
	// Too many entries.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i < 20; i++ {
		w, _ := zw.Create(strings.Repeat("x", i+1))
		w.Write([]byte("hello"))
	}
	zw.Close()
	rep = New(Options{Limits: Limits{MaxEntries: 5}}).ScanBytes(context.Background(), "many.zip", buf.Bytes())
	if hasRule(rep, "scan.archive.limit") == nil {
		t.Errorf("entry limit: %+v", rep.Findings)
	}
	// Decompressed size budget.
	buf.Reset()
	zw = zip.NewWriter(&buf)
	w, _ := zw.Create("big.bin")
	w.Write(make([]byte, 4<<20))
	zw.Close()
	rep = New(Options{Limits: Limits{MaxDecompressed: 1 << 20}}).ScanBytes(context.Background(), "big.zip", buf.Bytes())
	if hasRule(rep, "scan.archive.limit") == nil {
		t.Errorf("decompression limit: %+v", rep.Findings)
	}
	// Entries larger than MaxInMemory go through a temporary file.
	buf.Reset()
	zw = zip.NewWriter(&buf)
	w, _ = zw.Create("evil.pkl")
	w.Write(append(append([]byte(nil), evilPickle...), make([]byte, 3<<20)...))
	zw.Close()
	rep = New(Options{Limits: Limits{MaxInMemory: 1 << 20}}).ScanBytes(context.Background(), "spool.zip", buf.Bytes())
	if rep.Max() != SeverityCritical {
		t.Errorf("spooled entry: %+v", rep.Findings)
	}
}

// TestLargeSafetensorsReadsTheHeaderOnly scans a 4 GiB sparse file: it must
// take well under a second because only the header is read.
func TestLargeSafetensorsReadsTheHeaderOnly(t *testing.T) {
	const size = 4 << 30
	hdr := []byte(`{"w":{"dtype":"U8","shape":[` + itoa(size-8-128) + `],"data_offsets":[0,` + itoa(size-8-128) + `]}}`)
	hdr = append(hdr, bytes.Repeat([]byte(" "), 128-len(hdr))...)
	path := filepath.Join(t.TempDir(), "big.safetensors")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
	f.Write(n[:])
	f.Write(hdr)
	if err := f.Truncate(size); err != nil {
		t.Skip("no sparse files:", err)
	}
	f.Close()
	start := time.Now()
	rep := scanPaths(t, Options{}, path)
	if rep.Max() != SeveritySafe || len(rep.Scanned) != 1 {
		t.Errorf("big safetensors: %+v", rep.Findings)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("scanning the header of a 4 GiB file took %v", d)
	}
}

func itoa(v int) string { return strconv.Itoa(v) }

func TestDetectionEdgeCases(t *testing.T) {
	s := New(Options{})
	// Random binary with an unknown extension is skipped, not flagged.
	rep := s.ScanBytes(context.Background(), "blob.dat", []byte{0x10, 0x20, 0x30, 0x00, 0xff})
	if len(rep.Skipped) != 1 || len(rep.Findings) != 0 {
		t.Errorf("unknown binary: %+v", rep)
	}
	// Text starting with a pickle opcode letter that does not parse.
	rep = s.ScanBytes(context.Background(), "README", []byte("cat\ndog\nthis is not a pickle\n"))
	if len(rep.Findings) != 0 {
		t.Errorf("text file: %+v", rep.Findings)
	}
	// Two bytes that look like a zlib header are not enough.
	rep = s.ScanBytes(context.Background(), "notes", []byte("x\x9cnot really compressed"))
	if len(rep.Findings) != 0 || len(rep.Skipped) != 1 {
		t.Errorf("fake zlib header: %+v", rep)
	}
	// A claimed format that is not there is unparseable.
	for _, name := range []string{"m.safetensors", "m.gguf", "m.onnx", "m.npy", "m.h5", "m.pkl", "m.pt"} {
		rep = s.ScanBytes(context.Background(), name, []byte("definitely not that format, and quite long too"))
		if rep.Max() < SeverityMedium {
			t.Errorf("%s: %+v", name, rep.Findings)
		}
	}
	// A safetensors that is a zip.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("data.pkl")
	w.Write(evilPickle)
	zw.Close()
	rep = s.ScanBytes(context.Background(), "model.safetensors", buf.Bytes())
	if hasRule(rep, "scan.format-mismatch") == nil || rep.Max() != SeverityCritical {
		t.Errorf("zip named .safetensors: %+v", rep.Findings)
	}
}

func TestWritersAreDeterministicAndValid(t *testing.T) {
	paths := []string{filepath.Join("testdata", "corpus", "malicious", "pytorch"), filepath.Join("testdata", "corpus", "malicious", "pickle")}
	var outs [2][3]bytes.Buffer
	for i := range outs {
		rep := scanPaths(t, Options{}, paths...)
		for j, format := range []string{FormatTable, FormatJSON, FormatSARIF} {
			if err := Write(&outs[i][j], rep, format); err != nil {
				t.Fatal(err)
			}
		}
	}
	for j := range outs[0] {
		if !bytes.Equal(outs[0][j].Bytes(), outs[1][j].Bytes()) {
			t.Errorf("format %d is not deterministic", j)
		}
	}
	var js struct {
		SchemaVersion int `json:"schema_version"`
		Summary       struct {
			ByS   map[string]int `json:"total_issues_by_severity"`
			Total int            `json:"total_issues"`
		} `json:"summary"`
		Issues []Finding `json:"issues"`
	}
	if err := json.Unmarshal(outs[0][1].Bytes(), &js); err != nil {
		t.Fatal(err)
	}
	if js.SchemaVersion != SchemaVersion || js.Summary.Total != len(js.Issues) || js.Summary.ByS["CRITICAL"] == 0 {
		t.Errorf("json summary: %+v", js.Summary)
	}
	if js.Issues[0].Fickling == "" || len(js.Issues[0].ATLAS) == 0 {
		t.Errorf("json issue lacks fickling/atlas: %+v", js.Issues[0])
	}
	var sarif struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Rules []struct{ ID string } `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Locations []struct {
					PhysicalLocation struct {
						Region *struct {
							ByteOffset int64 `json:"byteOffset"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(outs[0][2].Bytes(), &sarif); err != nil {
		t.Fatal(err)
	}
	run := sarif.Runs[0]
	withRegion := 0
	for _, r := range run.Results {
		if run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("ruleIndex %d does not name %s", r.RuleIndex, r.RuleID)
		}
		if r.Locations[0].PhysicalLocation.Region != nil {
			withRegion++
		}
	}
	if sarif.Version != "2.1.0" || withRegion == 0 {
		t.Errorf("SARIF: version %q, %d results with byteOffset", sarif.Version, withRegion)
	}
	for id := range ruleDescriptions {
		if !strings.HasPrefix(id, "scan.") {
			t.Errorf("rule %q is not under scan.", id)
		}
	}
	if !strings.Contains(outs[0][0].String(), "CRITICAL") {
		t.Errorf("table:\n%s", outs[0][0].String())
	}
}

// TestEveryRuleIsDescribed checks that each rule a scan of the corpus
// produces is in the catalogue SARIF uses.
func TestEveryRuleIsDescribed(t *testing.T) {
	rep := scanPaths(t, Options{}, filepath.Join("testdata", "corpus"))
	for _, f := range rep.Findings {
		if ruleDescriptions[f.Rule] == "" {
			t.Errorf("rule %s has no description", f.Rule)
		}
	}
}
