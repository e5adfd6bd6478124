package safetensors

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
)

// Entry is one tensor as described by the header.
type Entry struct {
	Name  string
	DType DType
	Shape []int
	// Begin and End are the data_offsets: the tensor's bytes are
	// [Begin, End) relative to the start of the data buffer.
	Begin, End int64
}

// IgnoredField names a key in a tensor entry that the format does not define.
// Such keys are accepted, as the reference implementation accepts them, but a
// scanner may want to report them: they can carry data no loader looks at.
type IgnoredField struct {
	Tensor string
	Key    string
}

// Header is the validated header of a safetensors file.
type Header struct {
	// Entries are sorted by data offset (then by end, then by name, so that
	// zero-size tensors sharing an offset have a fixed order).
	Entries []Entry
	// Metadata is the "__metadata__" object, or nil when there is none.
	Metadata map[string]string
	// Ignored lists the unknown keys found in tensor entries.
	Ignored []IgnoredField
	// HeaderLen is N, the length of the JSON header including its padding.
	HeaderLen int64
	// DataOffset is where the data buffer starts in the file: 8 + N.
	DataOffset int64
	// DataLen is the length of the data buffer: the file size minus
	// DataOffset. The entries cover it exactly.
	DataLen int64
}

// Entry returns the entry of the tensor with the given name.
func (h *Header) Entry(name string) (*Entry, bool) {
	for i := range h.Entries {
		if h.Entries[i].Name == name {
			return &h.Entries[i], true
		}
	}
	return nil, false
}

// Parse parses and validates a whole safetensors file held in memory. The
// tensors' Data slices point into b rather than copying it; each is capped at
// its own end, so appending to one never overwrites its neighbour.
func Parse(b []byte) (*File, error) {
	n, err := checkHeaderLen(b, int64(len(b)))
	if err != nil {
		return nil, err
	}
	h, err := parseHeader(b[8:8+n], int64(len(b)))
	if err != nil {
		return nil, err
	}
	return h.file(b[h.DataOffset:]), nil
}

// file builds a File from the header and the data buffer it was checked
// against.
func (h *Header) file(data []byte) *File {
	f := &File{Metadata: h.Metadata, Tensors: make([]Tensor, len(h.Entries))}
	for i, e := range h.Entries {
		f.Tensors[i] = Tensor{Name: e.Name, DType: e.DType, Shape: e.Shape, Data: data[e.Begin:e.End:e.End]}
	}
	return f
}

// ParseHeader reads and validates the header of a safetensors file of the
// given size, without reading its data buffer: the checks that involve the
// data (offsets, lengths, coverage) need only its size. This is what a
// scanner uses on files too large to load.
func ParseHeader(r io.ReaderAt, size int64) (*Header, error) {
	var prefix [8]byte
	if size >= 8 {
		if err := readFullAt(r, prefix[:], 0); err != nil {
			return nil, fmt.Errorf("safetensors: reading the header length: %w", err)
		}
	}
	n, err := checkHeaderLen(prefix[:], size)
	if err != nil {
		return nil, err
	}
	// n is at most MaxHeaderSize, so this allocation is bounded.
	hdr := make([]byte, n)
	if err := readFullAt(r, hdr, 8); err != nil {
		return nil, fmt.Errorf("safetensors: reading the %d-byte header: %w", n, err)
	}
	return parseHeader(hdr, size)
}

// readFullAt fills b from r at off. An io.ReaderAt may return io.EOF along
// with a full read at the end of the input; that is not an error here.
func readFullAt(r io.ReaderAt, b []byte, off int64) error {
	k, err := r.ReadAt(b, off)
	if k == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// checkHeaderLen checks the file size and the header length N read from the
// first 8 bytes of prefix, and returns N.
func checkHeaderLen(prefix []byte, size int64) (int64, error) {
	if size < 8 {
		return 0, formatErr("file is %d bytes, shorter than the 8-byte header length", size)
	}
	n := binary.LittleEndian.Uint64(prefix[:8])
	if n == 0 {
		return 0, formatErr("header length is 0; the header must be a JSON object of at least 2 bytes")
	}
	if n > MaxHeaderSize {
		return 0, formatErr("header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(size-8) {
		return 0, formatErr("header length %d is larger than the %d bytes of the file after the length", n, size-8)
	}
	return int64(n), nil
}

// ReadFile reads and validates the safetensors file at path. The header is
// checked before the data is read, so a malformed file is refused without
// loading it. Errors start with the path.
func ReadFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	h, err := ParseHeader(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if h.DataLen > math.MaxInt {
		return nil, fmt.Errorf("%s: %w", path, formatErr("data buffer of %d bytes does not fit in memory on this platform", h.DataLen))
	}
	data := make([]byte, h.DataLen)
	if err := readFullAt(f, data, h.DataOffset); err != nil {
		return nil, fmt.Errorf("%s: safetensors: reading the %d-byte data buffer: %w", path, h.DataLen, err)
	}
	return h.file(data), nil
}
