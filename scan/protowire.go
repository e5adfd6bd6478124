package scan

import (
	"errors"
	"fmt"
	"io"
)

// A generic reader of the protobuf wire format, used for TensorFlow
// SavedModels (no TensorFlow protos needed) and ONNX files. It walks the
// fields of a message in an io.ReaderAt without loading it: a field's
// payload is only located (offset and length), and the caller reads what it
// needs, so a 2 GiB ONNX file costs a window of memory.

// Wire types.
const (
	wireVarint = 0
	wireI64    = 1
	wireLen    = 2
	wireSGroup = 3
	wireEGroup = 4
	wireI32    = 5
)

// pbField is one field of a message.
type pbField struct {
	num  uint64
	typ  int
	val  uint64 // varint and fixed values
	off  int64  // offset of the payload of a length-delimited field
	n    int64  // length of that payload
	from int64  // offset of the field's tag
}

// errPBDepth is returned for messages nested too deeply.
var errPBDepth = errors.New("protobuf groups nested too deeply")

// pbWalk calls fn for each field of the message in r[start:end].
func pbWalk(r io.ReaderAt, start, end int64, fn func(f pbField) error) error {
	w := newWindowReader(r, start, end)
	return pbWalkReader(w, fn)
}

func pbWalkReader(w *windowReader, fn func(f pbField) error) error {
	for w.remaining() > 0 {
		from := w.pos
		tag, err := readVarint(w)
		if err != nil {
			return fmt.Errorf("field tag at offset %d: %w", from, err)
		}
		f := pbField{num: tag >> 3, typ: int(tag & 7), from: from}
		if f.num == 0 {
			return fmt.Errorf("field number 0 at offset %d", from)
		}
		switch f.typ {
		case wireVarint:
			if f.val, err = readVarint(w); err != nil {
				return fmt.Errorf("varint at offset %d: %w", w.pos, err)
			}
		case wireI64, wireI32:
			k := 8
			if f.typ == wireI32 {
				k = 4
			}
			var b [8]byte
			if err := w.readFull(b[:k]); err != nil {
				return fmt.Errorf("fixed-size field at offset %d: %w", w.pos, wrapShort(err))
			}
			for i := k - 1; i >= 0; i-- {
				f.val = f.val<<8 | uint64(b[i])
			}
		case wireLen:
			n, err := readVarint(w)
			if err != nil {
				return fmt.Errorf("length at offset %d: %w", w.pos, err)
			}
			if n > uint64(w.remaining()) {
				return fmt.Errorf("field %d at offset %d declares %d bytes but only %d remain", f.num, from, n, w.remaining())
			}
			f.off, f.n = w.pos, int64(n)
			w.pos += int64(n)
		case wireSGroup:
			if err := skipGroup(w, f.num, 0); err != nil {
				return err
			}
			continue
		default:
			return fmt.Errorf("invalid wire type %d at offset %d", f.typ, from)
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// skipGroup skips a deprecated group up to its end tag.
func skipGroup(w *windowReader, num uint64, depth int) error {
	if depth > 64 {
		return errPBDepth
	}
	for {
		from := w.pos
		tag, err := readVarint(w)
		if err != nil {
			return fmt.Errorf("group at offset %d: %w", from, err)
		}
		switch tag & 7 {
		case wireVarint:
			_, err = readVarint(w)
		case wireI64:
			err = w.skip(8)
		case wireI32:
			err = w.skip(4)
		case wireLen:
			var n uint64
			if n, err = readVarint(w); err == nil {
				if n > uint64(w.remaining()) {
					return fmt.Errorf("group field at offset %d declares %d bytes but only %d remain", from, n, w.remaining())
				}
				err = w.skip(int64(n))
			}
		case wireSGroup:
			err = skipGroup(w, tag>>3, depth+1)
		case wireEGroup:
			if tag>>3 != num {
				return fmt.Errorf("group end at offset %d does not match its start", from)
			}
			return nil
		default:
			return fmt.Errorf("invalid wire type %d at offset %d", tag&7, from)
		}
		if err != nil {
			return fmt.Errorf("group at offset %d: %w", from, wrapShort(err))
		}
	}
}

func wrapShort(err error) error {
	if errors.Is(err, errShort) {
		return errors.New("truncated")
	}
	return err
}

// readVarint reads a base-128 varint of at most 10 bytes.
func readVarint(w *windowReader) (uint64, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		b, err := w.readByte()
		if err != nil {
			return 0, wrapShort(err)
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("varint longer than 10 bytes")
}

// pbString reads the payload of a length-delimited field as text, keeping at
// most max bytes.
func pbString(r io.ReaderAt, f pbField, max int) string {
	n := f.n
	if n > int64(max) {
		n = int64(max)
	}
	b := make([]byte, n)
	k, _ := r.ReadAt(b, f.off)
	return string(b[:k])
}
