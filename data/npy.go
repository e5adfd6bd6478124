package data

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// NPY is numpy's array file: the magic "\x93NUMPY", a version, a header
// length, a header that is a Python dict literal
//
//	{'descr': '<f4', 'fortran_order': False, 'shape': (10, 28, 28), }
//
// padded with spaces and a newline, then the raw elements. The header is
// parsed by a small strict parser (never evaluated), accepting exactly the
// three keys numpy writes.

// maxNPYHeader caps the header length. numpy itself refuses headers over
// 10000 bytes by default; a valid header is far smaller.
const maxNPYHeader = 1 << 16

// decodeNPY decodes one .npy file of exactly size bytes read from r (a file,
// or a zip entry whose size the caller has checked is plausible). The data
// length the header declares must equal what the size leaves after the
// header, which is checked before allocating.
func decodeNPY(r io.Reader, size int64) (*array, error) {
	var pre [12]byte
	if n, err := fill(r, pre[:10]); err != nil {
		return nil, shortRead(err, fmt.Sprintf("truncated: only %d bytes, too short for an NPY header", n))
	}
	if string(pre[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("not an NPY file: it starts with %q, not \"\\x93NUMPY\"", pre[:6])
	}
	major, minor := pre[6], pre[7]
	var hlen, prefix int64
	switch {
	case major == 1 && minor == 0:
		hlen, prefix = int64(binary.LittleEndian.Uint16(pre[8:10])), 10
	case (major == 2 || major == 3) && minor == 0:
		if n, err := fill(r, pre[10:12]); err != nil {
			return nil, shortRead(err, fmt.Sprintf("truncated: only %d bytes, too short for an NPY header", 10+n))
		}
		hlen, prefix = int64(binary.LittleEndian.Uint32(pre[8:12])), 12
	default:
		return nil, fmt.Errorf("unsupported NPY version %d.%d (supported: 1.0, 2.0, 3.0)", major, minor)
	}
	if hlen > maxNPYHeader {
		return nil, fmt.Errorf("NPY header claims %d bytes, more than the %d any real header needs", hlen, maxNPYHeader)
	}
	if prefix+hlen > size {
		return nil, fmt.Errorf("truncated: NPY header claims %d bytes but the file has only %d after the preamble", hlen, size-prefix)
	}
	header := make([]byte, hlen)
	if n, err := fill(r, header); err != nil {
		return nil, shortRead(err, fmt.Sprintf("truncated: NPY header claims %d bytes but only %d follow", hlen, n))
	}
	descr, fortran, shape, err := parseNPYHeader(header)
	if err != nil {
		return nil, fmt.Errorf("bad NPY header %q: %w", header, err)
	}
	a, err := parseDescr(descr)
	if err != nil {
		return nil, err
	}
	a.shape = shape

	count, ok := product(shape, MaxDecodedBytes/int64(a.size))
	if !ok {
		return nil, fmt.Errorf("NPY header declares shape %s of %s, more than the limit of %d bytes", shapeString(shape), a.dtype(), MaxDecodedBytes)
	}
	need, avail := count*int64(a.size), size-prefix-hlen
	switch {
	case need > avail:
		return nil, fmt.Errorf("truncated: header says shape %s of %s (%d bytes) but only %d bytes of data follow", shapeString(shape), a.dtype(), need, avail)
	case need < avail:
		return nil, fmt.Errorf("header says shape %s of %s (%d bytes) but %d bytes of data follow", shapeString(shape), a.dtype(), need, avail)
	}
	a.raw = make([]byte, need)
	if n, err := fill(r, a.raw); err != nil {
		return nil, shortRead(err, fmt.Sprintf("truncated: header says shape %s of %s (%d bytes) but only %d bytes of data follow", shapeString(shape), a.dtype(), need, n))
	}
	// Read to the end: a zip entry checks its CRC there, and a reader
	// that still has bytes was not the size we were told.
	var one [1]byte
	if n, err := fill(r, one[:]); n > 0 {
		return nil, fmt.Errorf("more data follows the %d bytes that shape %s of %s needs", need, shapeString(shape), a.dtype())
	} else if err != io.EOF {
		return nil, err
	}
	if fortran && len(shape) > 1 {
		a.raw = fortranToC(a.raw, shape, a.size)
	}
	return a, nil
}

func shortRead(err error, msg string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New(msg)
	}
	return err
}

// parseDescr maps a numpy type string ('<f4', '|u1', '>i8', ...) to an
// element kind, size and byte order.
func parseDescr(d string) (*array, error) {
	if len(d) >= 2 && d[1] == 'O' {
		return nil, fmt.Errorf("object array (dtype %q): object arrays contain Python pickles, which can run arbitrary code when loaded, so they are never loaded; run `bulwark scan` on the file to inspect it, and re-save the data with a numeric dtype", d)
	}
	if len(d) < 3 {
		return nil, fmt.Errorf("unsupported dtype %q", d)
	}
	order, kind, width := d[0], d[1], d[2:]
	size, err := strconv.Atoi(width)
	if err != nil || width[0] == '+' || width[0] == '-' {
		return nil, fmt.Errorf("unsupported dtype %q", d)
	}
	switch kind {
	case 'u', 'i':
		if size != 1 && size != 2 && size != 4 && size != 8 {
			return nil, fmt.Errorf("unsupported dtype %q: integers must be 1, 2, 4 or 8 bytes", d)
		}
	case 'f':
		if size != 2 && size != 4 && size != 8 {
			return nil, fmt.Errorf("unsupported dtype %q: floats must be 2, 4 or 8 bytes", d)
		}
	case 'b':
		if size != 1 {
			return nil, fmt.Errorf("unsupported dtype %q", d)
		}
	default:
		return nil, fmt.Errorf("unsupported dtype %q: only bool, integer and float arrays are loaded", d)
	}
	switch {
	case order == '|' && size == 1, order == '<', order == '>':
	default:
		return nil, fmt.Errorf("unsupported dtype %q: byte order must be '<' or '>' ('|' for one-byte types)", d)
	}
	return &array{kind: kind, size: size, big: order == '>' && size > 1}, nil
}

// parseNPYHeader parses the header dict. It accepts the literal syntax
// numpy writes (quoted keys, a quoted descr, True/False, a tuple of
// integers, optional trailing commas, whitespace padding) and nothing else.
func parseNPYHeader(h []byte) (descr string, fortran bool, shape []int, err error) {
	p := &dictParser{s: h}
	p.space()
	if !p.eat('{') {
		return "", false, nil, errors.New("does not start with '{'")
	}
	seen := map[string]bool{}
	for {
		p.space()
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return "", false, nil, err
		}
		if seen[key] {
			return "", false, nil, fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		p.space()
		if !p.eat(':') {
			return "", false, nil, fmt.Errorf("no ':' after key %q", key)
		}
		p.space()
		switch key {
		case "descr":
			if p.peek() == '[' {
				return "", false, nil, errors.New("structured dtypes (a list descr) are not supported")
			}
			descr, err = p.str()
		case "fortran_order":
			fortran, err = p.boolean()
		case "shape":
			shape, err = p.tuple()
		default:
			return "", false, nil, fmt.Errorf("unexpected key %q", key)
		}
		if err != nil {
			return "", false, nil, fmt.Errorf("%s: %w", key, err)
		}
		p.space()
		if !p.eat(',') {
			p.space()
			if !p.eat('}') {
				return "", false, nil, fmt.Errorf("expected ',' or '}' at byte %d", p.i)
			}
			break
		}
	}
	p.space()
	if p.i != len(p.s) {
		return "", false, nil, fmt.Errorf("unexpected %q after the dict", p.s[p.i:])
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return "", false, nil, fmt.Errorf("missing key %q", k)
		}
	}
	return descr, fortran, shape, nil
}

type dictParser struct {
	s []byte
	i int
}

func (p *dictParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *dictParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *dictParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\n' || p.s[p.i] == '\t' || p.s[p.i] == '\r') {
		p.i++
	}
}

// str parses a quoted string without escapes: numpy's keys and descr never
// need them, and refusing them keeps the parser trivially correct.
func (p *dictParser) str() (string, error) {
	q := p.peek()
	if q != '\'' && q != '"' {
		return "", fmt.Errorf("expected a quoted string at byte %d", p.i)
	}
	p.i++
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != q {
		if p.s[p.i] == '\\' {
			return "", fmt.Errorf("escape in string at byte %d", p.i)
		}
		p.i++
	}
	if p.i == len(p.s) {
		return "", errors.New("unterminated string")
	}
	p.i++
	return string(p.s[start : p.i-1]), nil
}

func (p *dictParser) boolean() (bool, error) {
	rest := string(p.s[p.i:])
	switch {
	case len(rest) >= 4 && rest[:4] == "True":
		p.i += 4
		return true, nil
	case len(rest) >= 5 && rest[:5] == "False":
		p.i += 5
		return false, nil
	}
	return false, fmt.Errorf("expected True or False at byte %d", p.i)
}

// tuple parses "()", "(5,)", "(10, 28, 28)".
func (p *dictParser) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, fmt.Errorf("expected '(' at byte %d", p.i)
	}
	dims := []int{}
	for {
		p.space()
		if p.eat(')') {
			return dims, nil
		}
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		if p.i == start {
			return nil, fmt.Errorf("expected a non-negative integer at byte %d", p.i)
		}
		d, err := strconv.Atoi(string(p.s[start:p.i]))
		if err != nil {
			return nil, fmt.Errorf("dimension %s is too large", p.s[start:p.i])
		}
		if len(dims) == maxRank {
			return nil, fmt.Errorf("more than %d dimensions", maxRank)
		}
		dims = append(dims, d)
		p.space()
		if !p.eat(',') {
			p.space()
			if !p.eat(')') {
				return nil, fmt.Errorf("expected ',' or ')' at byte %d", p.i)
			}
			return dims, nil
		}
	}
}

// fortranToC reorders column-major elements into row-major order: element
// (i0..ik) sits at offset sum(i_j*stride_j) with stride_0 = 1 in Fortran
// order. We walk the C order with an odometer and keep the Fortran offset
// in step.
func fortranToC(raw []byte, shape []int, size int) []byte {
	out := make([]byte, len(raw))
	rank := len(shape)
	stride := make([]int, rank)
	s := 1
	for j := range shape {
		stride[j] = s
		s *= shape[j]
	}
	idx := make([]int, rank)
	off := 0
	for c := 0; c < len(raw)/size; c++ {
		copy(out[c*size:(c+1)*size], raw[off*size:(off+1)*size])
		for j := rank - 1; j >= 0; j-- {
			idx[j]++
			off += stride[j]
			if idx[j] < shape[j] {
				break
			}
			off -= idx[j] * stride[j]
			idx[j] = 0
		}
	}
	return out
}
