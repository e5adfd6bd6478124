package scan

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// fuzzLimits keep each fuzz input cheap while still crossing every limit.
var fuzzLimits = Limits{
	MaxOps: 200_000, MaxMemo: 10_000, MaxStack: 10_000, MaxNesting: 100,
	MaxStringKept: 4096, MaxRetainedBytes: 1 << 20, MaxRetainedItems: 50_000,
	MaxStreams: 8, MaxEvents: 100, MaxDepth: 4, MaxEntries: 200,
	MaxDecompressed: 32 << 20, MaxInMemory: 8 << 20, MaxConfig: 1 << 20,
}

// addCorpusSeeds adds the small files of the scan corpus as seeds.
func addCorpusSeeds(f *testing.F, add func(name string, b []byte)) {
	_ = filepath.WalkDir(filepath.Join("testdata", "corpus"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if info, err := d.Info(); err == nil && info.Size() <= 64<<10 {
			if b, err := os.ReadFile(p); err == nil {
				add(d.Name(), b)
			}
		}
		return nil
	})
}

// FuzzPickle runs the pickle VM on arbitrary bytes: it must not panic, must
// stay within its limits and must keep its invariants.
func FuzzPickle(f *testing.F) {
	f.Add([]byte("cos\nsystem\n(S'x'\ntR."))
	f.Add([]byte("\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93."))
	f.Add(evilPickle)
	addCorpusSeeds(f, func(_ string, b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, b []byte) {
		res := AnalyzePickle(context.Background(), bytes.NewReader(b), int64(len(b)), PickleOptions{Limits: fuzzLimits})
		if res.Err == nil && res.Streams == 0 {
			t.Fatalf("no error and no stream")
		}
		if res.Ops > fuzzLimits.MaxOps {
			t.Fatalf("%d ops past the limit", res.Ops)
		}
		if res.End < 0 || res.End > int64(len(b)) {
			t.Fatalf("end %d outside the input", res.End)
		}
		for _, e := range res.Events {
			if e.Offset < 0 || e.Offset >= int64(len(b)) || e.Count < 1 {
				t.Fatalf("bad event %+v", e)
			}
			if e.Severity > SeveritySafe && e.Rule == "" {
				t.Fatalf("event without a rule %+v", e)
			}
		}
		for _, p := range res.Payloads {
			if p.Src >= 0 && (p.Src+p.Len > int64(len(b)) || p.Len < 0) {
				t.Fatalf("payload outside the input %+v", p)
			}
		}
	})
}

var fuzzNames = []string{"m.pkl", "m.pt", "m.bin", "m.npy", "m.npz", "m.safetensors", "m.gguf", "m.onnx",
	"m.h5", "m.keras", "saved_model.pb", "g.pb", "config.json", "m.tar", "m.gz", "m.zip", "unknown"}

// FuzzScanFile runs format detection and every scanner on arbitrary bytes
// under every file name the detector knows.
func FuzzScanFile(f *testing.F) {
	for i := range fuzzNames {
		f.Add(uint8(i), evilPickle)
	}
	addCorpusSeeds(f, func(name string, b []byte) {
		for i, n := range fuzzNames {
			if filepath.Ext(n) == filepath.Ext(name) {
				f.Add(uint8(i), b)
				return
			}
		}
		f.Add(uint8(len(fuzzNames)-1), b)
	})
	s := New(Options{Limits: fuzzLimits})
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		name := fuzzNames[int(which)%len(fuzzNames)]
		rep := s.ScanBytes(context.Background(), name, b)
		if len(rep.Scanned)+len(rep.Skipped) != 1 {
			t.Fatalf("file neither scanned nor skipped: %+v", rep)
		}
		for _, fd := range rep.Findings {
			if fd.Severity < SeverityInfo || fd.Severity > SeverityCritical || ruleDescriptions[fd.Rule] == "" {
				t.Fatalf("bad finding %+v", fd)
			}
			if fd.FileOffset >= 0 && fd.FileOffset > int64(len(b)) {
				t.Fatalf("file offset %d outside the %d-byte input: %+v", fd.FileOffset, len(b), fd)
			}
		}
	})
}
