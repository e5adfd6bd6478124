package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDTypeSize(t *testing.T) {
	want := map[DType]int{
		"F64": 8, "F32": 4, "F16": 2, "BF16": 2,
		"I64": 8, "I32": 4, "I16": 2, "I8": 1,
		"U64": 8, "U32": 4, "U16": 2, "U8": 1,
		"BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
	}
	for d, n := range want {
		got, ok := d.Size()
		if !ok || got != n {
			t.Errorf("%s.Size() = %d, %v; want %d, true", d, got, ok, n)
		}
	}
	for _, d := range []DType{"", "f32", "F128", "Q4", "F8_E4M3FN", "str"} {
		if n, ok := d.Size(); ok {
			t.Errorf("%q.Size() = %d, true; want unknown", d, n)
		}
	}
}

// knownFile is a file written by hand from the spec, in the exact form
// Encode must produce for knownTensors: tensors sorted by name, data in that
// order, header padded with spaces to a multiple of 8.
var knownFile = []byte("" +
	"\x90\x00\x00\x00\x00\x00\x00\x00" + // header length 144
	`{"__metadata__":{"format":"pt"},` +
	`"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},` +
	`"b":{"dtype":"I16","shape":[1,3],"data_offsets":[8,14]}}` +
	"   " + // 141 bytes of JSON padded to 144
	"\x00\x00\x80\x3f\x00\x00\x00\xc0" + // a: 1.0, -2.0
	"\x01\x00\x02\x00\xff\xff") // b: 1, 2, -1

func knownTensors() []Tensor {
	return []Tensor{
		{Name: "b", DType: DTypeI16, Shape: []int{1, 3}, Data: []byte{1, 0, 2, 0, 0xff, 0xff}},
		F32("a", []int{2}, []float32{1, -2}),
	}
}

func TestEncodeKnownBytes(t *testing.T) {
	got, err := Encode(knownTensors(), map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, knownFile) {
		t.Fatalf("Encode =\n%q\nwant\n%q", got, knownFile)
	}
}

func TestParseKnownBytes(t *testing.T) {
	f, err := Parse(knownFile)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Metadata, map[string]string{"format": "pt"}) {
		t.Errorf("metadata = %v", f.Metadata)
	}
	if len(f.Tensors) != 2 || f.Tensors[0].Name != "a" || f.Tensors[1].Name != "b" {
		t.Fatalf("tensors = %+v", f.Tensors)
	}
	a, b := f.Tensors[0], f.Tensors[1]
	if a.DType != DTypeF32 || !reflect.DeepEqual(a.Shape, []int{2}) {
		t.Errorf("a = %s %v", a.DType, a.Shape)
	}
	vals, err := a.Float32()
	if err != nil || !reflect.DeepEqual(vals, []float32{1, -2}) {
		t.Errorf("a.Float32() = %v, %v; want [1 -2]", vals, err)
	}
	if b.DType != DTypeI16 || !reflect.DeepEqual(b.Shape, []int{1, 3}) || !bytes.Equal(b.Data, []byte{1, 0, 2, 0, 0xff, 0xff}) {
		t.Errorf("b = %s %v % x", b.DType, b.Shape, b.Data)
	}
}

// TestParseForeignLayout parses a file in the style Python writers produce
// (spaces after separators, data not in name order) to check that Tensors come
// back in data order and offsets are honoured.
func TestParseForeignLayout(t *testing.T) {
	hdr := `{"b": {"dtype": "I16", "shape": [1, 3], "data_offsets": [0, 6]}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [6, 14]}}  `
	if len(hdr) != 128 {
		t.Fatalf("test header is %d bytes", len(hdr))
	}
	file := []byte("\x80\x00\x00\x00\x00\x00\x00\x00" + hdr +
		"\x01\x00\x02\x00\xff\xff" + "\x00\x00\x80\x3f\x00\x00\x00\xc0")
	f, err := Parse(file)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata != nil {
		t.Errorf("metadata = %v, want nil", f.Metadata)
	}
	if len(f.Tensors) != 2 || f.Tensors[0].Name != "b" || f.Tensors[1].Name != "a" {
		t.Fatalf("tensors not in data order: %+v", f.Tensors)
	}
	a, ok := f.Get("a")
	if !ok {
		t.Fatal(`Get("a") found nothing`)
	}
	if vals, err := a.Float32(); err != nil || !reflect.DeepEqual(vals, []float32{1, -2}) {
		t.Errorf("a.Float32() = %v, %v", vals, err)
	}
	if _, ok := f.Get("c"); ok {
		t.Error(`Get("c") found a tensor`)
	}
	// Re-encoding puts the data in name order: exactly knownFile without
	// its metadata.
	enc, err := Encode(f.Tensors, map[string]string{"format": "pt"})
	if err != nil || !bytes.Equal(enc, knownFile) {
		t.Errorf("re-encoded = %q, %v", enc, err)
	}
}

func TestRoundTrip(t *testing.T) {
	u := func(b ...byte) []byte { return b }
	tensors := []Tensor{
		F32("weight", []int{2, 3}, []float32{1, 2, 3, -4.5, float32(math.Inf(1)), 0}),
		{Name: "f64", DType: DTypeF64, Shape: []int{2}, Data: u(0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0xc0)},
		{Name: "f16", DType: DTypeF16, Shape: []int{3}, Data: u(0x00, 0x3c, 0x00, 0xc0, 0x00, 0x7c)},
		{Name: "bf16 scalar", DType: DTypeBF16, Shape: []int{}, Data: u(0x80, 0x3f)},
		{Name: "i64", DType: DTypeI64, Shape: []int{1}, Data: u(1, 2, 3, 4, 5, 6, 7, 8)},
		{Name: "i8", DType: DTypeI8, Shape: []int{2, 1}, Data: u(0x80, 0x7f)},
		{Name: "u8", DType: DTypeU8, Shape: []int{4}, Data: u(1, 2, 3, 4)},
		{Name: "u64", DType: DTypeU64, Shape: []int{1}, Data: u(9, 9, 9, 9, 9, 9, 9, 9)},
		{Name: "mask", DType: DTypeBOOL, Shape: []int{3}, Data: u(1, 0, 1)},
		{Name: "fp8", DType: DTypeF8E4M3, Shape: []int{2}, Data: u(0x38, 0xb8)},
		{Name: "fp8b", DType: DTypeF8E5M2, Shape: []int{1}, Data: u(0x3c)},
		{Name: "empty", DType: DTypeU32, Shape: []int{0, 5}, Data: nil},
		{Name: "model.layers.0.attn/q \"proj\"\n\u00e9", DType: DTypeI32, Shape: []int{1}, Data: u(0xff, 0xff, 0xff, 0x7f)},
	}
	meta := map[string]string{"format": "pt", "quote\"": "line\nbreak <&> \u2028 \x01", "": "empty key"}
	enc, err := Encode(tensors, meta)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(enc)
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	f, err := Parse(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Metadata, meta) {
		t.Errorf("metadata = %q, want %q", f.Metadata, meta)
	}
	if len(f.Tensors) != len(tensors) {
		t.Fatalf("got %d tensors, want %d", len(f.Tensors), len(tensors))
	}
	for i := 1; i < len(f.Tensors); i++ {
		if f.Tensors[i-1].Name >= f.Tensors[i].Name {
			t.Errorf("tensors not in name order: %q before %q", f.Tensors[i-1].Name, f.Tensors[i].Name)
		}
	}
	for _, want := range tensors {
		got, ok := f.Get(want.Name)
		if !ok {
			t.Errorf("tensor %q missing", want.Name)
			continue
		}
		if got.DType != want.DType || !reflect.DeepEqual(got.Shape, want.Shape) || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("tensor %q = %s %v % x, want %s %v % x", want.Name, got.DType, got.Shape, got.Data, want.DType, want.Shape, want.Data)
		}
	}
	// Encoding is deterministic: the same input in another order gives
	// the same bytes.
	rev := make([]Tensor, len(tensors))
	for i := range tensors {
		rev[len(tensors)-1-i] = tensors[i]
	}
	enc2, err := Encode(rev, meta)
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Errorf("Encode depends on input order (err %v)", err)
	}
}

func TestNoMetadataIsOmitted(t *testing.T) {
	for _, meta := range []map[string]string{nil, {}} {
		enc, err := Encode(nil, meta)
		if err != nil {
			t.Fatal(err)
		}
		if want := "\x08\x00\x00\x00\x00\x00\x00\x00{}      "; string(enc) != want {
			t.Errorf("Encode(nil, %v) = %q, want %q", meta, enc, want)
		}
	}
}

func TestDataIsCapped(t *testing.T) {
	f, err := Parse(bytes.Clone(knownFile))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Get("a")
	_ = append(a.Data, 0xee, 0xee) // must not write into b's bytes
	b, _ := f.Get("b")
	if !bytes.Equal(b.Data, []byte{1, 0, 2, 0, 0xff, 0xff}) {
		t.Errorf("appending to a changed b: % x", b.Data)
	}
}

func f16(bits ...uint16) Tensor {
	d := make([]byte, 2*len(bits))
	for i, b := range bits {
		binary.LittleEndian.PutUint16(d[2*i:], b)
	}
	return Tensor{Name: "h", DType: DTypeF16, Shape: []int{len(bits)}, Data: d}
}

func TestFloat32F16(t *testing.T) {
	tn := f16(0x3c00, 0xc000, 0x3800, 0x3555, 0x7bff, 0x0400, 0x0001, 0x03ff, 0x0000, 0x8000, 0x7c00, 0xfc00)
	want := []float32{
		1, -2, 0.5,
		0.333251953125,    // 0x3555: 1.0101010101b * 2^-2
		65504,             // largest half
		1.0 / 16384,       // 2^-14, smallest normal
		1.0 / 16777216,    // 2^-24, smallest subnormal
		1023.0 / 16777216, // largest subnormal
		0, float32(math.Copysign(0, -1)),
		float32(math.Inf(1)), float32(math.Inf(-1)),
	}
	got, err := tn.Float32()
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Errorf("F16 element %d = %g (%08x), want %g (%08x)", i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
	nan := f16(0x7e00, 0xfc01)
	got, err = nan.Float32()
	if err != nil || !math.IsNaN(float64(got[0])) || !math.IsNaN(float64(got[1])) {
		t.Errorf("F16 NaNs = %v, %v", got, err)
	}
}

func TestFloat32BF16(t *testing.T) {
	tn := Tensor{Name: "b", DType: DTypeBF16, Shape: []int{2, 2}, Data: []byte{0x80, 0x3f, 0x00, 0xc0, 0x49, 0x40, 0x80, 0x7f}}
	want := []float32{1, -2, 3.140625, float32(math.Inf(1))}
	got, err := tn.Float32()
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("BF16 = %v, %v; want %v", got, err, want)
	}
}

func TestFloat32F64(t *testing.T) {
	vals := []float64{1.5, -3, 0.1, 1e300, -1e-300}
	d := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(d[8*i:], math.Float64bits(v))
	}
	tn := Tensor{Name: "d", DType: DTypeF64, Shape: []int{5}, Data: d}
	got, err := tn.Float32()
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{1.5, -3, 0.1, float32(math.Inf(1)), float32(math.Copysign(0, -1))}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Errorf("F64 element %d = %g, want %g", i, got[i], want[i])
		}
	}
}

func TestFloat32F32(t *testing.T) {
	in := []float32{0, -1.25, 3.4e38, float32(math.SmallestNonzeroFloat32)}
	tn := F32("w", []int{2, 2}, in)
	got, err := tn.Float32()
	if err != nil || !reflect.DeepEqual(got, in) {
		t.Errorf("F32 = %v, %v; want %v", got, err, in)
	}
}

func TestFloat32Errors(t *testing.T) {
	cases := []struct {
		t    Tensor
		want []string
	}{
		{Tensor{Name: "ids", DType: DTypeI32, Shape: []int{1}, Data: make([]byte, 4)}, []string{`tensor "ids"`, "dtype I32"}},
		{Tensor{Name: "q", DType: DTypeF8E4M3, Shape: []int{1}, Data: make([]byte, 1)}, []string{`tensor "q"`, "dtype F8_E4M3"}},
		{Tensor{Name: "bad", DType: DTypeF16, Shape: []int{3}, Data: make([]byte, 4)}, []string{`tensor "bad"`, "data is 4 bytes", "needs 6 bytes"}},
		{F32("short", []int{2, 2}, []float32{1, 2, 3}), []string{`tensor "short"`, "data is 12 bytes", "needs 16 bytes"}},
	}
	for _, c := range cases {
		_, err := c.t.Float32()
		if err == nil {
			t.Errorf("%q: Float32 accepted it", c.t.Name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not contain %q", c.t.Name, err, w)
			}
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	ok := F32("ok", []int{1}, []float32{1})
	cases := []struct {
		name    string
		tensors []Tensor
		meta    map[string]string
		want    string
	}{
		{"empty name", []Tensor{ok, F32("", []int{1}, []float32{1})}, nil, "tensor 1 has an empty name"},
		{"reserved name", []Tensor{F32("__metadata__", []int{1}, []float32{1})}, nil, `tensor name "__metadata__" is reserved`},
		{"duplicate", []Tensor{ok, ok}, nil, `duplicate tensor name "ok"`},
		{"bad utf8 name", []Tensor{F32("a\xff", []int{1}, []float32{1})}, nil, "is not valid UTF-8"},
		{"unknown dtype", []Tensor{{Name: "x", DType: "F128", Shape: []int{1}, Data: make([]byte, 16)}}, nil, `tensor "x": unknown dtype "F128"`},
		{"length mismatch", []Tensor{F32("x", []int{2, 2}, []float32{1})}, nil, `tensor "x": data is 4 bytes but shape [2 2] of dtype F32 needs 16 bytes`},
		{"negative dim", []Tensor{{Name: "x", DType: DTypeU8, Shape: []int{-1}}}, nil, `tensor "x": shape dimension 0 is -1`},
		{"overflow", []Tensor{{Name: "x", DType: DTypeU8, Shape: []int{1 << 32, 1 << 32}}}, nil, `tensor "x": shape [4294967296 4294967296] of dtype U8 overflows`},
		{"too many dimensions", []Tensor{{Name: "x", DType: DTypeU8, Shape: make([]int, 1025)}}, nil, `tensor "x": shape has more than 1024 dimensions`},
		{"bad utf8 meta key", []Tensor{ok}, map[string]string{"\xff": "v"}, "__metadata__ key"},
		{"bad utf8 meta value", []Tensor{ok}, map[string]string{"k": "\xff"}, `__metadata__ value for key "k" is not valid UTF-8`},
	}
	for _, c := range cases {
		_, err := Encode(c.tensors, c.meta)
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Encode error %v, want a *FormatError containing %q", c.name, err, c.want)
		}
	}
}

// recordingReader serves only the first len(b) bytes of a pretend file and
// records the furthest byte anything asked for.
type recordingReader struct {
	b       []byte
	maxRead int64
}

func (r *recordingReader) ReadAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > r.maxRead {
		r.maxRead = end
	}
	if off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func TestParseHeaderReadsOnlyTheHeader(t *testing.T) {
	// A header describing 1 TiB of data, on a pretend file of that size.
	const tib = int64(1) << 40
	hdr := `{"__metadata__":{"k":"v"},"big":{"dtype":"F32","shape":[262144,1048576],"data_offsets":[0,1099511627776]},"small":{"dtype":"U8","shape":[0],"data_offsets":[1099511627776,1099511627776],"extra":[1]}}`
	file := build(hdr, "")
	r := &recordingReader{b: file}
	h, err := ParseHeader(r, int64(len(file))+tib)
	if err != nil {
		t.Fatal(err)
	}
	if r.maxRead > int64(len(file)) {
		t.Errorf("ParseHeader read up to byte %d, past the header's end %d", r.maxRead, len(file))
	}
	if h.HeaderLen != int64(len(hdr)) || h.DataOffset != 8+int64(len(hdr)) || h.DataLen != tib {
		t.Errorf("HeaderLen %d DataOffset %d DataLen %d", h.HeaderLen, h.DataOffset, h.DataLen)
	}
	big, ok := h.Entry("big")
	if !ok || big.DType != DTypeF32 || big.Begin != 0 || big.End != tib || !reflect.DeepEqual(big.Shape, []int{262144, 1048576}) {
		t.Errorf("big = %+v", big)
	}
	if len(h.Entries) != 2 || h.Entries[1].Name != "small" {
		t.Errorf("entries = %+v", h.Entries)
	}
	if !reflect.DeepEqual(h.Ignored, []IgnoredField{{Tensor: "small", Key: "extra"}}) {
		t.Errorf("Ignored = %+v", h.Ignored)
	}
	if !reflect.DeepEqual(h.Metadata, map[string]string{"k": "v"}) {
		t.Errorf("Metadata = %v", h.Metadata)
	}
}

func TestParseHeaderShortReader(t *testing.T) {
	// The size claims more than the reader holds: an I/O error, not a
	// format error, and no panic.
	r := &recordingReader{b: knownFile[:20]}
	_, err := ParseHeader(r, int64(len(knownFile)))
	var fe *FormatError
	if err == nil || errors.As(err, &fe) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("err = %v, want an unexpected EOF", err)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	if err := os.WriteFile(good, knownFile, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := f.Get("b"); !ok || !bytes.Equal(b.Data, []byte{1, 0, 2, 0, 0xff, 0xff}) {
		t.Errorf("b = %+v", b)
	}

	bad := filepath.Join(dir, "polyglot.safetensors")
	if err := os.WriteFile(bad, append(append([]byte{}, knownFile...), "#!/bin/sh\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadFile(bad)
	var fe *FormatError
	if err == nil || !strings.HasPrefix(err.Error(), bad+": ") || !errors.As(err, &fe) || !strings.Contains(err.Error(), "10 trailing bytes after the last tensor") {
		t.Errorf("ReadFile(polyglot) error = %v", err)
	}

	missing := filepath.Join(dir, "missing.safetensors")
	_, err = ReadFile(missing)
	if err == nil || !strings.HasPrefix(err.Error(), missing+": ") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile(missing) error = %v", err)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	if err := WriteFile(path, knownTensors(), map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, knownFile) {
		t.Fatalf("file = %q, %v", got, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, %v", st.Mode(), err)
	}
}

func TestWriteFileFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	if err := WriteFile(path, knownTensors(), map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	// A tensor whose data does not match its shape: refused, and the old
	// file must be untouched.
	err := WriteFile(path, []Tensor{F32("w", []int{4}, []float32{1})}, nil)
	if err == nil || !strings.Contains(err.Error(), `tensor "w"`) {
		t.Fatalf("WriteFile error = %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, knownFile) {
		t.Errorf("old file changed: %q, %v", got, err)
	}

	// A failure in the file system after the data is written: the
	// destination is a non-empty directory, so the final rename fails.
	// Nothing may be left behind.
	blocked := filepath.Join(dir, "blocked")
	if err := os.MkdirAll(filepath.Join(blocked, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(blocked, knownTensors(), nil); err == nil {
		t.Fatal("WriteFile over a directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(blocked, "keep")); err != nil {
		t.Errorf("directory contents changed: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, []string{"blocked", "model.safetensors"}) {
		t.Errorf("directory holds %v; temporary files left behind?", names)
	}
}

// BenchmarkParseHeader measures header parsing for a large model: 10,000
// tensors, about 800 KB of header.
func BenchmarkParseHeader(b *testing.B) {
	tensors := make([]Tensor, 10000)
	for i := range tensors {
		tensors[i] = Tensor{Name: fmt.Sprintf("model.layers.%d.mlp.weight", i), DType: DTypeBF16, Shape: []int{1, 2, 2}, Data: make([]byte, 8)}
	}
	enc, err := Encode(tensors, map[string]string{"format": "pt"})
	if err != nil {
		b.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(enc)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(bytes.NewReader(enc), int64(len(enc))); err != nil {
			b.Fatal(err)
		}
	}
}
