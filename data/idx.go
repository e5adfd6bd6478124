package data

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// IDX is the format of the MNIST family: a 4-byte magic (two zero bytes, a
// data type, the number of dimensions), one big-endian uint32 per
// dimension, then the elements, big-endian, in C order. Files are usually
// gzipped.

// idxTypes maps the IDX data type byte to our element kind and size.
var idxTypes = map[byte]struct {
	kind byte
	size int
}{
	0x08: {'u', 1},
	0x09: {'i', 1},
	0x0B: {'i', 2},
	0x0C: {'i', 4},
	0x0D: {'f', 4},
	0x0E: {'f', 8},
}

// decodeIDX decodes one IDX file, gzipped or not, read from r. size is the
// length of the file: before allocating, the size the header declares is
// checked against what a file of that length can hold (for gzip, what it can
// decompress to), so a lying header costs nothing.
func decodeIDX(r io.Reader, size int64) (*array, error) {
	br := bufio.NewReader(r)
	var src io.Reader = br
	limit := size
	compressed := false
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, gzipError(err)
		}
		src, limit, compressed = zr, maxInflated(size), true
	}

	var head [4]byte
	if n, err := fill(src, head[:]); err != nil {
		if err == io.EOF && !compressed && n == 0 {
			return nil, errors.New("empty file, not an IDX file")
		}
		return nil, readError(err, compressed, fmt.Sprintf("only %d bytes, too short for an IDX header", n))
	}
	t, known := idxTypes[head[2]]
	if head[0] != 0 || head[1] != 0 || !known || head[3] == 0 || head[3] > maxRank {
		return nil, fmt.Errorf("not an IDX file: magic is 0x%08x; want 0x000008NN for unsigned bytes (0x00000803 images, 0x00000801 labels), or type 0x09, 0x0B, 0x0C, 0x0D, 0x0E with 1..%d dimensions",
			binary.BigEndian.Uint32(head[:]), maxRank)
	}

	rank := int(head[3])
	dimBytes := make([]byte, 4*rank)
	if n, err := fill(src, dimBytes); err != nil {
		return nil, readError(err, compressed, fmt.Sprintf("header declares %d dimensions but only %d of their %d bytes follow", rank, n, len(dimBytes)))
	}
	shape := make([]int, rank)
	for i := range shape {
		d := binary.BigEndian.Uint32(dimBytes[4*i:])
		if uint64(d) > uint64(maxInt) {
			return nil, fmt.Errorf("dimension %d is %d, too large for this platform", i, d)
		}
		shape[i] = int(d)
	}

	a := &array{kind: t.kind, size: t.size, big: true, shape: shape}
	count, ok := product(shape, MaxDecodedBytes/int64(t.size))
	if !ok {
		return nil, fmt.Errorf("header declares %s, more than the limit of %d bytes", describeIDX(a), MaxDecodedBytes)
	}
	need := count * int64(t.size)
	if avail := limit - int64(4+4*rank); need > avail {
		// The file cannot hold that much. Count what it does hold, without
		// keeping it, so the error says how short it is.
		got, err := io.Copy(io.Discard, io.LimitReader(src, need))
		if err != nil {
			return nil, readError(err, compressed, "")
		}
		return nil, fmt.Errorf("truncated: header says %s (%d bytes) but only %d bytes of data follow", describeIDX(a), need, got)
	}

	a.raw = make([]byte, need)
	if n, err := fill(src, a.raw); err != nil {
		if compressed && err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("truncated gzip stream: it ends after %d of the %d data bytes the header declares (%s)", n, need, describeIDX(a))
		}
		return nil, readError(err, compressed, fmt.Sprintf("truncated: header says %s (%d bytes) but only %d bytes of data follow", describeIDX(a), need, n))
	}
	// Nothing may follow the data: extra bytes mean the header does not
	// describe the file. Reading to the end also makes gzip verify its CRC.
	extra, err := io.Copy(io.Discard, io.LimitReader(src, limit))
	if err != nil {
		return nil, readError(err, compressed, "")
	}
	if extra > 0 {
		return nil, fmt.Errorf("header says %s (%d bytes) but %d more bytes follow the data", describeIDX(a), need, extra)
	}
	return a, nil
}

// describeIDX says what an IDX header declares in the words a user would
// use: "10000 images of 28x28", "60000 values".
func describeIDX(a *array) string {
	var s string
	switch len(a.shape) {
	case 1:
		s = fmt.Sprintf("%d values", a.shape[0])
	case 3:
		s = fmt.Sprintf("%d images of %dx%d", a.shape[0], a.shape[1], a.shape[2])
	default:
		s = "shape " + shapeString(a.shape)
	}
	if a.kind != 'u' {
		s += " of " + a.dtype()
	}
	return s
}

// fill reads len(buf) bytes. Unlike io.ReadFull it returns the reader's own
// error, so a clean end of data (io.EOF) can be told from a gzip stream cut
// short (io.ErrUnexpectedEOF).
func fill(r io.Reader, buf []byte) (int, error) {
	n, stalls := 0, 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if n == len(buf) {
			return n, nil // a reader may report EOF with the last bytes; the next read says it again
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			if stalls++; stalls > 100 {
				return n, io.ErrNoProgress
			}
		}
	}
	return n, nil
}

// readError turns a read error into a message: short says what was missing
// when the data simply ended.
func readError(err error, compressed bool, short string) error {
	switch {
	case err == io.EOF && short != "":
		return errors.New(short)
	case compressed:
		return gzipError(err)
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return errors.New("truncated file")
	}
	return err
}

func gzipError(err error) error {
	var corrupt flate.CorruptInputError
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return errors.New("truncated gzip stream: the compressed data ends early")
	case errors.Is(err, gzip.ErrChecksum):
		return errors.New("corrupt gzip stream: checksum mismatch")
	case errors.Is(err, gzip.ErrHeader):
		return errors.New("corrupt gzip stream: invalid header (or junk after the compressed data)")
	case errors.As(err, &corrupt):
		return fmt.Errorf("corrupt gzip stream: %s", strings.TrimPrefix(err.Error(), "flate: "))
	}
	return fmt.Errorf("reading gzip stream: %w", err)
}

const maxInt = int(^uint(0) >> 1)
