package safetensors

import (
	"encoding/binary"
	"io"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/bulwark-sec/bulwark/internal/atomicfile"
)

// Encode returns the safetensors encoding of the tensors and metadata. The
// output is deterministic: tensors are sorted by name and their data laid out
// in that order, metadata keys are sorted, and the header is padded with
// spaces to a multiple of 8 bytes so that the data buffer is 8-byte aligned.
// "__metadata__" is written only when metadata is not empty. Every tensor is
// validated first, so Encode never writes a file that Parse would refuse.
func Encode(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	hdr, order, err := encodeHeader(tensors, metadata)
	if err != nil {
		return nil, err
	}
	total := len(hdr)
	for _, i := range order {
		total += len(tensors[i].Data)
	}
	out := make([]byte, 0, total)
	out = append(out, hdr...)
	for _, i := range order {
		out = append(out, tensors[i].Data...)
	}
	return out, nil
}

// WriteFile writes the encoding of the tensors and metadata to path
// atomically: readers and crashes see the old file or the new one, never a
// torn one, and on any error the old file is left as it was. The data is
// streamed to the file rather than assembled in memory first.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	hdr, order, err := encodeHeader(tensors, metadata)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		for _, i := range order {
			if _, err := w.Write(tensors[i].Data); err != nil {
				return err
			}
		}
		return nil
	})
}

// encodeHeader validates the tensors and metadata and returns the length
// prefix and padded header, and the order (by name) in which the tensors'
// data must follow it.
func encodeHeader(tensors []Tensor, metadata map[string]string) ([]byte, []int, error) {
	seen := make(map[string]bool, len(tensors))
	for i := range tensors {
		t := &tensors[i]
		if t.Name == "" {
			return nil, nil, formatErr("tensor %d has an empty name", i)
		}
		if t.Name == metadataKey {
			return nil, nil, formatErr("tensor name %q is reserved for the metadata object", metadataKey)
		}
		// A header must be valid UTF-8: Parse refuses anything else,
		// and laxer readers turn it into U+FFFD, so such a name could not
		// be read back as written.
		if !utf8.ValidString(t.Name) {
			return nil, nil, formatErr("tensor name %q is not valid UTF-8", shorten(t.Name))
		}
		if seen[t.Name] {
			return nil, nil, formatErr("duplicate tensor name %q", shorten(t.Name))
		}
		seen[t.Name] = true
		if err := t.checkData(); err != nil {
			return nil, nil, err
		}
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) {
			return nil, nil, formatErr("__metadata__ key %q is not valid UTF-8", shorten(k))
		}
		if !utf8.ValidString(v) {
			return nil, nil, formatErr("__metadata__ value for key %q is not valid UTF-8", shorten(k))
		}
	}

	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return tensors[order[a]].Name < tensors[order[b]].Name })

	// The 8-byte length goes first; it is filled in once the header is
	// complete.
	b := make([]byte, 8, 256)
	b = append(b, '{')
	first := true
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = appendJSONString(b, metadataKey)
		b = append(b, ":{"...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, metadata[k])
		}
		b = append(b, '}')
		first = false
	}
	var offset int64
	for _, i := range order {
		t := &tensors[i]
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, t.Name)
		b = append(b, `:{"dtype":`...)
		b = appendJSONString(b, string(t.DType))
		b = append(b, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(d), 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendInt(b, offset, 10)
		b = append(b, ',')
		if int64(len(t.Data)) > math.MaxInt64-offset {
			return nil, nil, formatErr("tensors are too large: the data buffer would not fit in 64 bits")
		}
		offset += int64(len(t.Data))
		b = strconv.AppendInt(b, offset, 10)
		b = append(b, "]}"...)
	}
	b = append(b, '}')
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	n := len(b) - 8
	if n > MaxHeaderSize {
		return nil, nil, formatErr("header would be %d bytes, over the limit of %d bytes", n, MaxHeaderSize)
	}
	binary.LittleEndian.PutUint64(b[:8], uint64(n))
	return b, order, nil
}

// appendJSONString appends s as a JSON string. Only what JSON requires is
// escaped (quote, backslash, control characters), so that the output is
// short, stable, and free of the HTML escaping encoding/json adds. s must be
// valid UTF-8; callers check.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
