package scan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// A .npy file is a magic string, a version, a header length, a header that
// is a Python dict literal ({'descr': '<f4', 'fortran_order': False,
// 'shape': (3, 4), }) and the data. Arrays of dtype object are stored as a
// pickle of the whole array after the header: numpy.load(allow_pickle=True)
// runs it, so it is analysed like any pickle. Other arrays must hold
// exactly the bytes the header promises.

// maxNumpyHeader bounds the header read; NumPy itself refuses headers over
// 10,000 bytes unless told otherwise.
const maxNumpyHeader = 1 << 20

func (fsn *fileScan) scanNumpy(src source) {
	var pre [12]byte
	n, err := src.r.ReadAt(pre[:], 0)
	if n < 10 {
		if err != nil && !errors.Is(err, io.EOF) {
			fsn.ioError(src, err)
			return
		}
		fsn.unparseable(src, "numpy", 0, "shorter than the 10-byte .npy preamble")
		return
	}
	if string(pre[:6]) != "\x93NUMPY" {
		fsn.unparseable(src, "numpy", 0, "no \\x93NUMPY magic")
		return
	}
	major := pre[6]
	var hlen, dataOff int64
	switch major {
	case 1:
		hlen, dataOff = int64(binary.LittleEndian.Uint16(pre[8:10])), 10
	case 2, 3:
		if n < 12 {
			fsn.unparseable(src, "numpy", 0, "truncated preamble")
			return
		}
		hlen, dataOff = int64(binary.LittleEndian.Uint32(pre[8:12])), 12
	default:
		fsn.unparseable(src, "numpy", 6, fmt.Sprintf("unknown format version %d.%d", pre[6], pre[7]))
		return
	}
	if hlen > maxNumpyHeader || hlen > src.size-dataOff {
		fsn.unparseable(src, "numpy", 8, fmt.Sprintf("header length %d exceeds the file or the %d-byte limit", hlen, maxNumpyHeader))
		return
	}
	hdr := make([]byte, hlen)
	if k, err := src.r.ReadAt(hdr, dataOff); int64(k) < hlen {
		fsn.ioError(src, fmt.Errorf("reading the header: %v", err))
		return
	}
	dataOff += hlen
	lit, err := parsePyLiteral(string(hdr))
	if err != nil {
		fsn.unparseable(src, "numpy", dataOff-hlen, "header: "+err.Error())
		return
	}
	dict, ok := lit.(map[string]any)
	if !ok {
		fsn.unparseable(src, "numpy", dataOff-hlen, "header is not a dict")
		return
	}
	if _, ok := dict["fortran_order"].(bool); !ok {
		fsn.unparseable(src, "numpy", dataOff-hlen, "header lacks a boolean fortran_order")
		return
	}
	shape, ok := dict["shape"].([]any)
	if !ok {
		fsn.unparseable(src, "numpy", dataOff-hlen, "header lacks a shape tuple")
		return
	}
	numel := int64(1)
	for _, d := range shape {
		v, ok := d.(int64)
		if !ok || v < 0 {
			fsn.unparseable(src, "numpy", dataOff-hlen, fmt.Sprintf("shape has a bad dimension %v", d))
			return
		}
		if v != 0 && numel > math.MaxInt64/v {
			fsn.unparseable(src, "numpy", dataOff-hlen, "shape overflows")
			return
		}
		numel *= v
	}
	size, object, err := descrSize(dict["descr"], 0)
	if err != nil {
		fsn.unparseable(src, "numpy", dataOff-hlen, "descr: "+err.Error())
		return
	}
	if object {
		// numpy.save pickles object arrays (protocol 3) after the header.
		fsn.scanPickle(src, "numpy", dataOff, true)
		return
	}
	if size != 0 && numel > math.MaxInt64/size {
		fsn.unparseable(src, "numpy", dataOff-hlen, "array size overflows")
		return
	}
	want, have := numel*size, src.size-dataOff
	switch {
	case have < want:
		fsn.unparseable(src, "numpy (truncated)", dataOff, fmt.Sprintf("the header promises %d bytes of data but the file holds %d", want, have))
	case have > want:
		fsn.add(src, "numpy", dataOff+want, SeverityMedium, "scan.trailing-data",
			fmt.Sprintf("%d bytes after the array data that numpy.load never reads: room for a hidden payload (polyglot file)", have-want))
		fsn.scanTrailing(src, dataOff+want)
	}
}

// scanTrailing scans the bytes after the end of a format's data, in case
// they hold a second file.
func (fsn *fileScan) scanTrailing(src source, off int64) {
	if src.depth >= fsn.lim.MaxDepth {
		return
	}
	n := src.size - off
	child := src.child(fmt.Sprintf("trailing-at-%d", off), io.NewSectionReader(src.r, off, n), n, off)
	child.name = "trailing"
	fsn.scanSource(child)
}

// descrSize returns the item size of a dtype descr and whether it holds
// Python objects.
func descrSize(d any, depth int) (int64, bool, error) {
	if depth > 32 {
		return 0, false, errors.New("nested too deeply")
	}
	switch x := d.(type) {
	case string:
		return simpleDescrSize(x)
	case []any:
		// A structured dtype: [(name, descr[, shape]), ...].
		var total int64
		obj := false
		for _, f := range x {
			ft, ok := f.([]any)
			if !ok || len(ft) < 2 || len(ft) > 3 {
				return 0, false, fmt.Errorf("bad field %v", f)
			}
			sz, o, err := descrSize(ft[1], depth+1)
			if err != nil {
				return 0, false, err
			}
			obj = obj || o
			if len(ft) == 3 {
				sub, ok := ft[2].([]any)
				if !ok {
					if v, isInt := ft[2].(int64); isInt {
						sub = []any{v}
					} else {
						return 0, false, fmt.Errorf("bad field shape %v", ft[2])
					}
				}
				for _, s := range sub {
					v, ok := s.(int64)
					if !ok || v < 0 || (v != 0 && sz > math.MaxInt64/v) {
						return 0, false, fmt.Errorf("bad field shape %v", ft[2])
					}
					sz *= v
				}
			}
			if total > math.MaxInt64-sz {
				return 0, false, errors.New("item size overflows")
			}
			total += sz
		}
		return total, obj, nil
	}
	return 0, false, fmt.Errorf("unsupported descr %v", d)
}

// simpleDescrSize parses a type string such as "<f4", "|O", "<U10",
// "<M8[ns]".
func simpleDescrSize(s string) (int64, bool, error) {
	t := s
	if t != "" && strings.ContainsRune("<>|=", rune(t[0])) {
		t = t[1:]
	}
	if i := strings.IndexByte(t, '['); i >= 0 {
		t = t[:i]
	}
	if t == "" {
		return 0, false, fmt.Errorf("empty type %q", s)
	}
	kind, digits := t[0], t[1:]
	n := int64(0)
	if digits != "" {
		v, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || v < 0 || v > 1<<40 {
			return 0, false, fmt.Errorf("bad size in %q", s)
		}
		n = v
	}
	switch kind {
	case 'O':
		return 8, true, nil
	case '?':
		return 1, false, nil
	case 'b', 'i', 'u', 'f', 'c', 'S', 'a', 'V', 'M', 'm':
		if digits == "" {
			if kind == 'b' {
				return 1, false, nil
			}
			return 0, false, fmt.Errorf("type %q has no size", s)
		}
		return n, false, nil
	case 'U':
		return 4 * n, false, nil
	}
	return 0, false, fmt.Errorf("unknown type %q", s)
}

// parsePyLiteral parses the Python literal subset that NumPy headers use:
// dicts with string keys, tuples, lists, strings, integers, True, False and
// None.
func parsePyLiteral(s string) (any, error) {
	p := &litParser{s: s}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected %q at %d", p.s[p.i], p.i)
	}
	return v, nil
}

type litParser struct {
	s string
	i int
}

func (p *litParser) space() {
	for p.i < len(p.s) && strings.ContainsRune(" \t\r\n", rune(p.s[p.i])) {
		p.i++
	}
}

func (p *litParser) value(depth int) (any, error) {
	if depth > 64 {
		return nil, errors.New("nested too deeply")
	}
	p.space()
	if p.i >= len(p.s) {
		return nil, errors.New("unexpected end")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		p.i++
		m := map[string]any{}
		for {
			p.space()
			if p.i < len(p.s) && p.s[p.i] == '}' {
				p.i++
				return m, nil
			}
			k, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, errors.New("dict key is not a string")
			}
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, fmt.Errorf("expected ':' at %d", p.i)
			}
			p.i++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			if _, dup := m[ks]; dup {
				return nil, fmt.Errorf("duplicate key %q", ks)
			}
			m[ks] = v
			if err := p.sep('}'); err != nil {
				return nil, err
			}
		}
	case c == '(' || c == '[':
		end := byte(')')
		if c == '[' {
			end = ']'
		}
		p.i++
		var items []any
		for {
			p.space()
			if p.i < len(p.s) && p.s[p.i] == end {
				p.i++
				if items == nil {
					items = []any{}
				}
				return items, nil
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			items = append(items, v)
			if err := p.sep(end); err != nil {
				return nil, err
			}
		}
	case c == '\'' || c == '"':
		j := p.i + 1
		var b strings.Builder
		for j < len(p.s) && p.s[j] != c {
			if p.s[j] == '\\' && j+1 < len(p.s) {
				j++
			}
			b.WriteByte(p.s[j])
			j++
		}
		if j >= len(p.s) {
			return nil, errors.New("unterminated string")
		}
		p.i = j + 1
		return b.String(), nil
	case c == '-' || (c >= '0' && c <= '9'):
		j := p.i + 1
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		v, err := strconv.ParseInt(p.s[p.i:j], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad integer %q", p.s[p.i:j])
		}
		if j < len(p.s) && p.s[j] == 'L' { // Python 2 long
			j++
		}
		p.i = j
		return v, nil
	}
	for _, kw := range []struct {
		word string
		v    any
	}{{"True", true}, {"False", false}, {"None", nil}} {
		if strings.HasPrefix(p.s[p.i:], kw.word) {
			p.i += len(kw.word)
			return kw.v, nil
		}
	}
	return nil, fmt.Errorf("unexpected %q at %d", p.s[p.i], p.i)
}

// sep consumes the ',' between items, or sees the closing bracket.
func (p *litParser) sep(end byte) error {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ',' {
		p.i++
		return nil
	}
	if p.i < len(p.s) && p.s[p.i] == end {
		return nil
	}
	return fmt.Errorf("expected ',' or %q at %d", end, p.i)
}
