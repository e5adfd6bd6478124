package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// build assembles a file by hand: the 8-byte little-endian length of header,
// the header, then data.
func build(header, data string) []byte {
	return buildLen(uint64(len(header)), header+data)
}

// buildLen writes an arbitrary length prefix followed by rest.
func buildLen(n uint64, rest string) []byte {
	b := make([]byte, 8, 8+len(rest))
	binary.LittleEndian.PutUint64(b, n)
	return append(b, rest...)
}

// zeros returns n zero bytes as a string, for data buffers.
func zeros(n int) string { return strings.Repeat("\x00", n) }

type rejectCase struct {
	name string
	file []byte
	want []string // each must appear in the error message
}

// checkRejects asserts that Parse and ParseHeader both refuse each file with a
// *FormatError whose message holds every wanted word, and agree on it.
func checkRejects(t *testing.T, cases []rejectCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.file)
			if err == nil {
				t.Fatalf("Parse accepted the file: %d tensors, metadata %v", len(f.Tensors), f.Metadata)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse error %q (%T) is not a *FormatError", err, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse error %q does not contain %q", err, w)
				}
			}
			_, herr := ParseHeader(bytes.NewReader(c.file), int64(len(c.file)))
			if herr == nil || herr.Error() != err.Error() {
				t.Errorf("ParseHeader error %v, want the same as Parse: %v", herr, err)
			}
		})
	}
}
