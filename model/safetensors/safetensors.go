// Package safetensors reads and writes the safetensors format used by Hugging
// Face to store model weights.
//
// A safetensors file is an 8-byte little-endian unsigned header length N,
// then N bytes of UTF-8 JSON header, then the data buffer. The header maps
// each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, with
// offsets relative to the start of the data buffer, plus an optional
// "__metadata__" object of string to string.
//
// The reader is strict because it is fed untrusted files and is reused by a
// security scanner: anything the format does not allow is refused with a
// *FormatError, including the ambiguities that let two parsers disagree on
// what a file holds (duplicate JSON keys, overlapping tensors, bytes not
// covered by any tensor). It never panics on bad input, and what it allocates
// is bounded by the header length limit and the size of the file.
package safetensors

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// MaxHeaderSize is the largest header length accepted. It is the limit of the
// reference implementation (100,000,000 bytes), so that a header too large for
// it is too large for us as well, and it bounds what parsing a header can
// allocate.
const MaxHeaderSize = 100_000_000

// MaxRank is the largest number of dimensions a shape may have. The format
// sets no limit, but no framework uses more than a few dozen (NumPy stops at
// 64), and without one a header of "0,0,0,..." would make the parser build a
// shape slice several times the size of the header.
const MaxRank = 1024

// metadataKey is the reserved header key that holds the free-form metadata.
const metadataKey = "__metadata__"

// DType names the element type of a tensor, spelled as in the header.
type DType string

// The element types of the safetensors format.
const (
	DTypeF64    DType = "F64"
	DTypeF32    DType = "F32"
	DTypeF16    DType = "F16"
	DTypeBF16   DType = "BF16"
	DTypeI64    DType = "I64"
	DTypeI32    DType = "I32"
	DTypeI16    DType = "I16"
	DTypeI8     DType = "I8"
	DTypeU64    DType = "U64"
	DTypeU32    DType = "U32"
	DTypeU16    DType = "U16"
	DTypeU8     DType = "U8"
	DTypeBOOL   DType = "BOOL"
	DTypeF8E4M3 DType = "F8_E4M3"
	DTypeF8E5M2 DType = "F8_E5M2"
)

// Size returns the size in bytes of one element of type d, and false when d is
// not a known dtype. The list is closed on purpose: a dtype we do not know has
// a size we cannot check the data against, so such files are refused.
func (d DType) Size() (int, bool) {
	switch d {
	case DTypeF64, DTypeI64, DTypeU64:
		return 8, true
	case DTypeF32, DTypeI32, DTypeU32:
		return 4, true
	case DTypeF16, DTypeBF16, DTypeI16, DTypeU16:
		return 2, true
	case DTypeI8, DTypeU8, DTypeBOOL, DTypeF8E4M3, DTypeF8E5M2:
		return 1, true
	}
	return 0, false
}

// Tensor is one named tensor with its raw bytes.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	// Data holds the elements in row-major order, little-endian. Tensors
	// returned by Parse share the parsed byte slice.
	Data []byte
}

// File is a whole safetensors file held in memory.
type File struct {
	// Metadata is the "__metadata__" object, or nil when the file has none.
	Metadata map[string]string
	// Tensors are in the order of their data in the file (by data offset).
	Tensors []Tensor
}

// Get returns the tensor with the given name. It scans the list, which is fine
// for the few thousand tensors a model file holds.
func (f *File) Get(name string) (*Tensor, bool) {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return &f.Tensors[i], true
		}
	}
	return nil, false
}

// FormatError reports a file (or a tensor given to Encode) that breaks the
// format. Every validation failure is one, so that a caller such as a scanner
// can tell a malformed file from an I/O error with errors.As.
type FormatError struct {
	Msg string
}

func (e *FormatError) Error() string { return "safetensors: " + e.Msg }

// formatErr builds a *FormatError. Callers pass names, keys and shapes that
// come from the file through shorten and shortenShape: a hostile header can
// make one of them megabytes long, and an error message should stay readable
// and cheap to log.
func formatErr(format string, args ...any) error {
	return &FormatError{Msg: fmt.Sprintf(format, args...)}
}

// maxShown is how many bytes of a file-supplied string an error shows.
const maxShown = 200

// shorten cuts s to at most maxShown bytes, on a UTF-8 boundary, and says how
// long it was.
func shorten(s string) string {
	if len(s) <= maxShown {
		return s
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s...(%d bytes)", s[:cut], len(s))
}

// shortenShape formats a shape like %v does, showing at most 16 dimensions.
func shortenShape(shape []int) string {
	const maxDims = 16
	if len(shape) <= maxDims {
		return fmt.Sprint(shape)
	}
	return fmt.Sprintf("%v...(%d dimensions)]", strings.TrimSuffix(fmt.Sprint(shape[:maxDims]), "]"), len(shape))
}

// byteSize returns the number of bytes a tensor of the given dtype and shape
// occupies. It fails on a negative dimension and when the count does not fit
// in an int64. Zero dimensions are skipped when checking for overflow, so that
// the answer does not depend on where the zero is: a shape like
// [0, 2^62, 2^62] is refused just like [2^62, 2^62, 0], because code that
// computes strides from it would overflow either way.
func byteSize(name string, dtype DType, shape []int) (int64, error) {
	size, ok := dtype.Size()
	if !ok {
		return 0, formatErr("tensor %q: unknown dtype %q", shorten(name), shorten(string(dtype)))
	}
	if len(shape) > MaxRank {
		return 0, formatErr("tensor %q: shape has more than %d dimensions", name, MaxRank)
	}
	prod := int64(size)
	zero := false
	for i, d := range shape {
		if d < 0 {
			return 0, formatErr("tensor %q: shape dimension %d is %d; dimensions must be non-negative integers", shorten(name), i, d)
		}
		if d == 0 {
			zero = true
			continue
		}
		if prod > math.MaxInt64/int64(d) {
			return 0, formatErr("tensor %q: shape %v of dtype %s overflows: the byte size does not fit in 64 bits", shorten(name), shortenShape(shape), dtype)
		}
		prod *= int64(d)
	}
	if zero {
		return 0, nil
	}
	return prod, nil
}
