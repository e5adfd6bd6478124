package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics, that it and ParseHeader agree,
// and that whatever Parse accepts survives Encode and Parse unchanged.
func FuzzParse(f *testing.F) {
	f.Add(knownFile)
	for _, c := range acceptCases {
		f.Add(c.file)
	}
	for _, c := range allRejectCases() {
		f.Add(c.file)
	}
	if enc, err := Encode([]Tensor{
		F32("w", []int{2, 2}, []float32{1, 2, 3, 4}),
		{Name: "e", DType: DTypeBF16, Shape: []int{0}},
		{Name: "m", DType: DTypeBOOL, Shape: []int{}, Data: []byte{1}},
	}, map[string]string{"k": "v\"\\\n"}); err == nil {
		f.Add(enc)
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		h, herr := ParseHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse error %v (%T) is not a *FormatError", err, err)
			}
			if herr == nil || herr.Error() != err.Error() {
				t.Fatalf("Parse says %v but ParseHeader says %v", err, herr)
			}
			return
		}
		if herr != nil {
			t.Fatalf("Parse accepted the file but ParseHeader says %v", herr)
		}
		// The header describes exactly the tensors Parse returned.
		if len(h.Entries) != len(file.Tensors) {
			t.Fatalf("%d entries, %d tensors", len(h.Entries), len(file.Tensors))
		}
		for i, e := range h.Entries {
			tn := file.Tensors[i]
			want := b[h.DataOffset+e.Begin : h.DataOffset+e.End]
			if tn.Name != e.Name || tn.DType != e.DType || !reflect.DeepEqual(tn.Shape, e.Shape) || !bytes.Equal(tn.Data, want) {
				t.Fatalf("tensor %d = %q %s %v, entry %+v", i, tn.Name, tn.DType, tn.Shape, e)
			}
			if _, err := tn.Float32(); (err == nil) != (tn.DType == DTypeF32 || tn.DType == DTypeF64 || tn.DType == DTypeF16 || tn.DType == DTypeBF16) {
				t.Fatalf("tensor %q: Float32 error %v for dtype %s", tn.Name, err, tn.DType)
			}
		}

		agreeWithEncodingJSON(t, b[8:h.DataOffset], h)

		enc, err := Encode(file.Tensors, file.Metadata)
		if err != nil {
			t.Fatalf("Encode of a parsed file: %v", err)
		}
		back, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse of a re-encoded file: %v\n%q", err, enc)
		}
		sameFile(t, file, back)
		enc2, err := Encode(back.Tensors, back.Metadata)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %v\n%q\n%q", err, enc, enc2)
		}
	})
}

// sameFile fails unless a and b hold the same metadata (nil and empty being
// the same) and the same tensors, in any order.
func sameFile(t *testing.T, a, b *File) {
	t.Helper()
	if len(a.Metadata) != len(b.Metadata) {
		t.Fatalf("metadata %q became %q", a.Metadata, b.Metadata)
	}
	for k, v := range a.Metadata {
		if w, ok := b.Metadata[k]; !ok || w != v {
			t.Fatalf("metadata %q became %q", a.Metadata, b.Metadata)
		}
	}
	if len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%d tensors became %d", len(a.Tensors), len(b.Tensors))
	}
	for _, x := range a.Tensors {
		y, ok := b.Get(x.Name)
		if !ok {
			t.Fatalf("tensor %q lost", x.Name)
		}
		if x.DType != y.DType || !reflect.DeepEqual(x.Shape, y.Shape) || !bytes.Equal(x.Data, y.Data) {
			t.Fatalf("tensor %q = %s %v % x became %s %v % x", x.Name, x.DType, x.Shape, x.Data, y.DType, y.Shape, y.Data)
		}
	}
}

// agreeWithEncodingJSON checks a header our reader accepted against
// encoding/json: it must be valid JSON, with the same top-level keys and the
// same metadata. (encoding/json is laxer, never stricter, so it is an oracle
// only in this direction.)
func agreeWithEncodingJSON(t *testing.T, hdr []byte, h *Header) {
	t.Helper()
	if !json.Valid(hdr) {
		t.Fatalf("accepted a header encoding/json calls invalid: %q", hdr)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &top); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	n := len(h.Entries)
	if h.Metadata != nil {
		n++
		var meta map[string]string
		if err := json.Unmarshal(top[metadataKey], &meta); err != nil || !reflect.DeepEqual(meta, h.Metadata) {
			t.Fatalf("metadata %q, encoding/json says %q (%v)", h.Metadata, meta, err)
		}
	}
	if len(top) != n {
		t.Fatalf("%d top-level keys, encoding/json finds %d", n, len(top))
	}
	for _, e := range h.Entries {
		var entry struct {
			DType   string  `json:"dtype"`
			Shape   []int   `json:"shape"`
			Offsets []int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(top[e.Name], &entry); err != nil {
			t.Fatalf("tensor %q: encoding/json: %v", e.Name, err)
		}
		if entry.DType != string(e.DType) || !reflect.DeepEqual(entry.Shape, e.Shape) || !reflect.DeepEqual(entry.Offsets, []int64{e.Begin, e.End}) {
			t.Fatalf("tensor %q: %+v, encoding/json says %+v", e.Name, e, entry)
		}
	}
}

// FuzzJSON compares the header's JSON reader with encoding/json on arbitrary
// JSON values. Ours must accept only valid JSON, must accept all valid JSON
// except for the things it refuses on purpose (duplicate keys, lone
// surrogates, deep nesting), and must decode strings the same way.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `""`, `0`, `-0`, `1.5e-3`, `true`, `null`, ` {"a" : [1, "x", {"b": false}] } `,
		`"\u00e9\ud83d\ude00\n\"\\\/\b\f\r\t"`, `"\ud800"`, `"\udc00\ud800"`, `{"a":1,"a":2}`,
		`01`, `1.`, `.5`, `1e`, `+1`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `"\x"`, `"\u12g4"`, "\"\x01\"", `tru`, `nul`,
		strings.Repeat("[", 70) + strings.Repeat("]", 70),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return // the header is checked for UTF-8 before the reader runs
		}
		r := &jsonReader{b: b}
		err := r.skipValue("the value", 0)
		if err == nil {
			if _, ok := r.next(); ok {
				err = r.syntaxErr("the end")
			}
		}
		valid := json.Valid(b)
		if err == nil && !valid {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		if err != nil && valid {
			msg := err.Error()
			if !strings.Contains(msg, "duplicate key") && !strings.Contains(msg, "lone UTF-16 surrogate") && !strings.Contains(msg, "nested deeper") {
				t.Fatalf("refused valid JSON %q: %v", b, err)
			}
		}
		if err != nil || len(b) == 0 {
			return
		}
		// Strings decode as encoding/json decodes them.
		r = &jsonReader{b: b}
		if c, _ := r.next(); c == '"' {
			got, err := r.readString()
			var want string
			if jerr := json.Unmarshal(b, &want); err != nil || jerr != nil || got != want {
				t.Fatalf("string %q: ours %q (%v), encoding/json %q (%v)", b, got, err, want, jerr)
			}
		}
	})
}
