package scan

import (
	"bytes"
	"errors"
	"io"
)

// windowReader reads an io.ReaderAt sequentially through a fixed window, so
// that parsers of untrusted streams never hold more than the window plus
// what they decide to keep, whatever lengths the stream declares.
type windowReader struct {
	r      io.ReaderAt
	size   int64 // end of the readable range
	pos    int64
	win    []byte
	winOff int64 // stream offset of win[0]
	winLen int
	// ioErr is the last read error other than EOF: an I/O failure, which
	// the parsers report as such rather than as a format problem.
	ioErr error
}

const windowSize = 64 << 10

func newWindowReader(r io.ReaderAt, start, end int64) *windowReader {
	return &windowReader{r: r, size: end, pos: start, win: make([]byte, windowSize)}
}

// remaining is the number of bytes left before the end.
func (w *windowReader) remaining() int64 { return w.size - w.pos }

// errShort is returned when the stream ends before a read is satisfied.
var errShort = errors.New("unexpected end of input")

// load refills the window at pos.
func (w *windowReader) load() error {
	n := int64(len(w.win))
	if rem := w.size - w.pos; rem < n {
		n = rem
	}
	if n <= 0 {
		return errShort
	}
	k, err := w.r.ReadAt(w.win[:n], w.pos)
	w.winOff, w.winLen = w.pos, k
	if int64(k) < n {
		if err != nil && err != io.EOF {
			w.ioErr = err
			return err
		}
		// The ReaderAt is shorter than the size it was given.
		w.size = w.pos + int64(k)
		if k == 0 {
			return errShort
		}
	}
	return nil
}

// avail returns how many bytes at pos are in the window, loading it if needed.
func (w *windowReader) avail() (int, error) {
	if w.pos < w.winOff || w.pos >= w.winOff+int64(w.winLen) {
		if err := w.load(); err != nil {
			return 0, err
		}
	}
	return int(w.winOff + int64(w.winLen) - w.pos), nil
}

func (w *windowReader) readByte() (byte, error) {
	if w.pos >= w.size {
		return 0, errShort
	}
	if _, err := w.avail(); err != nil {
		return 0, err
	}
	b := w.win[w.pos-w.winOff]
	w.pos++
	return b, nil
}

// readFull fills b (which must be small, at most a few KiB, or a length the
// caller has already bounded) from pos.
func (w *windowReader) readFull(b []byte) error {
	if int64(len(b)) > w.remaining() {
		return errShort
	}
	for len(b) > 0 {
		n, err := w.avail()
		if err != nil {
			return err
		}
		c := copy(b, w.win[w.pos-w.winOff:w.pos-w.winOff+int64(n)])
		b = b[c:]
		w.pos += int64(c)
	}
	return nil
}

// readKeep consumes n bytes and returns the first keep of them. The caller
// checks n against remaining first.
func (w *windowReader) readKeep(n int64, keep int) ([]byte, error) {
	if n > w.remaining() {
		return nil, errShort
	}
	if int64(keep) > n {
		keep = int(n)
	}
	b := make([]byte, keep)
	if err := w.readFull(b); err != nil {
		return nil, err
	}
	w.pos += n - int64(keep)
	return b, nil
}

// skip moves forward n bytes without reading them.
func (w *windowReader) skip(n int64) error {
	if n < 0 || n > w.remaining() {
		return errShort
	}
	w.pos += n
	return nil
}

// readLine reads up to and including the next '\n' and returns the line
// without it, keeping at most keep bytes, and the line's full length. A
// stream that ends before the newline is an error.
func (w *windowReader) readLine(keep int) (line []byte, n int64, err error) {
	for {
		k, err := w.avail()
		if err != nil {
			return nil, 0, err
		}
		chunk := w.win[w.pos-w.winOff : w.pos-w.winOff+int64(k)]
		i := bytes.IndexByte(chunk, '\n')
		part := chunk
		if i >= 0 {
			part = chunk[:i]
		}
		if room := keep - len(line); room > 0 {
			if len(part) < room {
				room = len(part)
			}
			line = append(line, part[:room]...)
		}
		n += int64(len(part))
		if i >= 0 {
			w.pos += int64(i + 1)
			return line, n, nil
		}
		w.pos += int64(k)
	}
}
