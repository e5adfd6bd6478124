package safetensors

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseHeader validates the header bytes hdr of a file of the given size.
func parseHeader(hdr []byte, size int64) (*Header, error) {
	n := int64(len(hdr))
	h := &Header{HeaderLen: n, DataOffset: 8 + n, DataLen: size - 8 - n}
	if !utf8.Valid(hdr) {
		return nil, formatErr("header is not valid UTF-8 (first bad byte at header offset %d)", firstInvalidUTF8(hdr))
	}
	// The reference implementation checks this too; it also rules out
	// leading whitespace and byte-order marks.
	if hdr[0] != '{' {
		return nil, formatErr("header must start with '{' but starts with %q", hdr[0])
	}
	r := &jsonReader{b: hdr}
	if err := parseTop(r, h); err != nil {
		return nil, err
	}
	// Only spaces may follow the object: that is the padding writers use to
	// align the data buffer. Anything else is a place to hide content.
	for i := r.pos; i < len(hdr); i++ {
		if hdr[i] != ' ' {
			return nil, formatErr("header has %q at header offset %d after the JSON object; only spaces (0x20) may pad it", hdr[i], i)
		}
	}
	if err := checkLayout(h); err != nil {
		return nil, err
	}
	return h, nil
}

// firstInvalidUTF8 returns the index of the first byte of b that does not
// start a valid UTF-8 sequence.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, w := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && w == 1 {
			return i
		}
		i += w
	}
	return -1
}

// parseTop parses the header object: tensor entries and __metadata__.
func parseTop(r *jsonReader, h *Header) error {
	seen := map[string]bool{}
	return r.members(func(name string) error {
		if seen[name] {
			return formatErr("duplicate key %q in the header: a tensor name (or __metadata__) appears twice", shorten(name))
		}
		seen[name] = true
		if name == metadataKey {
			m, err := parseMetadata(r)
			h.Metadata = m
			return err
		}
		if name == "" {
			return formatErr("tensor name is empty")
		}
		e, err := parseEntry(r, name, h)
		if err != nil {
			return err
		}
		h.Entries = append(h.Entries, e)
		return nil
	})
}

// reservedNote ends the metadata errors, for the case where someone tried to
// name a tensor __metadata__.
const reservedNote = "(the name __metadata__ is reserved and cannot be a tensor)"

// parseMetadata parses the "__metadata__" object, which must map strings to
// strings. null is refused too: it is not an object, and accepting it would
// add a second way to say "no metadata".
func parseMetadata(r *jsonReader) (map[string]string, error) {
	if c, _ := r.next(); c != '{' {
		found, err := r.found("__metadata__")
		if err != nil {
			return nil, err
		}
		return nil, formatErr("__metadata__ must be a JSON object of string values, found %s %s", found, reservedNote)
	}
	m := map[string]string{}
	err := r.members(func(k string) error {
		if _, dup := m[k]; dup {
			return formatErr("duplicate key %q in __metadata__", shorten(k))
		}
		if c, _ := r.next(); c != '"' {
			what := fmt.Sprintf("__metadata__ value for key %q", shorten(k))
			found, err := r.found(what)
			if err != nil {
				return err
			}
			return formatErr("%s must be a string, found %s %s", what, found, reservedNote)
		}
		v, err := r.readString()
		m[k] = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// parseEntry parses the description of one tensor.
func parseEntry(r *jsonReader, name string, h *Header) (Entry, error) {
	e := Entry{Name: name}
	shown := shorten(name) // for messages
	if c, _ := r.next(); c != '{' {
		what := fmt.Sprintf("tensor %q: entry", shown)
		found, err := r.found(what)
		if err != nil {
			return e, err
		}
		return e, formatErr("%s must be a JSON object, found %s", what, found)
	}
	var haveDType, haveShape, haveOffsets bool
	var unknown map[string]bool // made only when there are unknown keys
	err := r.members(func(k string) error {
		dup := false
		switch k {
		case "dtype":
			dup, haveDType = haveDType, true
		case "shape":
			dup, haveShape = haveShape, true
		case "data_offsets":
			dup, haveOffsets = haveOffsets, true
		default:
			// Go's encoding/json matches struct fields ignoring case
			// (with Unicode folding: "ſhape" is "shape" to it), so a
			// loader built on it would read "DType" as "dtype" while
			// we skipped it. Refuse such keys rather than let the two
			// disagree.
			for _, known := range []string{"dtype", "shape", "data_offsets"} {
				if strings.EqualFold(k, known) {
					return formatErr("tensor %q: key %q differs from %q only in case; some JSON parsers would read it as %q", shown, shorten(k), known, known)
				}
			}
			if unknown == nil {
				unknown = map[string]bool{}
			}
			dup, unknown[k] = unknown[k], true
		}
		if dup {
			return formatErr("duplicate key %q in the entry of tensor %q", shorten(k), shown)
		}
		var err error
		switch k {
		case "dtype":
			e.DType, err = parseDType(r, shown)
		case "shape":
			e.Shape, err = parseShape(r, shown)
		case "data_offsets":
			e.Begin, e.End, err = parseOffsets(r, shown)
		default:
			// Unknown keys are skipped, as the reference implementation
			// skips them, so that files it loads are not refused here.
			// They are recorded in Header.Ignored for scanners.
			err = r.skipValue(fmt.Sprintf("the unknown field %q of tensor %q", shorten(k), shown), 0)
			h.Ignored = append(h.Ignored, IgnoredField{Tensor: name, Key: k})
		}
		return err
	})
	if err != nil {
		return e, err
	}
	for _, f := range []struct {
		have bool
		key  string
	}{{haveDType, "dtype"}, {haveShape, "shape"}, {haveOffsets, "data_offsets"}} {
		if !f.have {
			return e, formatErr("tensor %q: entry has no %q field", shown, f.key)
		}
	}
	want, err := byteSize(shown, e.DType, e.Shape)
	if err != nil {
		return e, err
	}
	if got := e.End - e.Begin; got != want {
		return e, formatErr("tensor %q: data_offsets [%d, %d] span %d bytes but shape %s of dtype %s needs %d bytes", shown, e.Begin, e.End, got, shortenShape(e.Shape), e.DType, want)
	}
	if e.End > h.DataLen {
		return e, formatErr("tensor %q: data_offsets end %d is past the end of the data buffer (%d bytes)", shown, e.End, h.DataLen)
	}
	return e, nil
}

// parseDType parses a dtype, which must be one we know the size of. name is
// the tensor name as shown in messages.
func parseDType(r *jsonReader, name string) (DType, error) {
	if c, _ := r.next(); c != '"' {
		what := fmt.Sprintf("tensor %q: dtype", name)
		found, err := r.found(what)
		if err != nil {
			return "", err
		}
		return "", formatErr("%s must be a string, found %s", what, found)
	}
	s, err := r.readString()
	if err != nil {
		return "", err
	}
	if _, ok := DType(s).Size(); !ok {
		return "", formatErr("tensor %q: unknown dtype %q", name, shorten(s))
	}
	return DType(s), nil
}

// parseShape parses a JSON array of at most MaxRank non-negative integers.
func parseShape(r *jsonReader, name string) ([]int, error) {
	if c, _ := r.next(); c != '[' {
		what := fmt.Sprintf("tensor %q: shape", name)
		found, err := r.found(what)
		if err != nil {
			return nil, err
		}
		return nil, formatErr("%s must be a JSON array, found %s", what, found)
	}
	// Non-nil even when empty, so a scalar has Shape []int{} both when
	// parsed and when built by hand the usual way.
	shape := []int{}
	err := r.elements(func() error {
		if len(shape) == MaxRank {
			return formatErr("tensor %q: shape has more than %d dimensions", name, MaxRank)
		}
		d, err := r.count(name, "shape dimension", len(shape), math.MaxInt)
		shape = append(shape, int(d))
		return err
	})
	if err != nil {
		return nil, err
	}
	return shape, nil
}

// parseOffsets parses data_offsets: exactly two non-negative integers, begin
// not after end.
func parseOffsets(r *jsonReader, name string) (begin, end int64, err error) {
	if c, _ := r.next(); c != '[' {
		what := fmt.Sprintf("tensor %q: data_offsets", name)
		found, err := r.found(what)
		if err != nil {
			return 0, 0, err
		}
		return 0, 0, formatErr("%s must be a JSON array, found %s", what, found)
	}
	var v [2]int64
	n := 0
	err = r.elements(func() error {
		if n == 2 {
			return formatErr("tensor %q: data_offsets must hold exactly two integers [begin, end], found more", name)
		}
		field := [2]string{"data_offsets begin", "data_offsets end"}[n]
		x, err := r.count(name, field, -1, math.MaxInt64)
		v[n] = x
		n++
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	if n != 2 {
		return 0, 0, formatErr("tensor %q: data_offsets must hold exactly two integers [begin, end], found %d", name, n)
	}
	if v[0] > v[1] {
		return 0, 0, formatErr("tensor %q: data_offsets [%d, %d] have begin after end", name, v[0], v[1])
	}
	return v[0], v[1], nil
}

// count reads a JSON number that must be a non-negative integer no larger
// than max. In messages it is "tensor <name>: <field>", followed by index
// when index >= 0. JSON numbers like 2.0 or 1e3 are refused, as the reference
// implementation refuses them for sizes: no writer spells a count that way,
// and accepting them would add ways to write the same header.
func (r *jsonReader) count(name, field string, index int, max int64) (int64, error) {
	what := func() string {
		if index >= 0 {
			return fmt.Sprintf("tensor %q: %s %d", name, field, index)
		}
		return fmt.Sprintf("tensor %q: %s", name, field)
	}
	if c, _ := r.next(); c != '-' && (c < '0' || c > '9') {
		found, err := r.found(what())
		if err != nil {
			return 0, err
		}
		return 0, formatErr("%s must be a non-negative integer, found %s", what(), found)
	}
	s, err := r.readNumber()
	if err != nil {
		return 0, err
	}
	if s[0] == '-' {
		return 0, formatErr("%s is %s; it must be a non-negative integer", what(), shorten(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, formatErr("%s is %s, not an integer", what(), shorten(s))
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v > max {
		return 0, formatErr("%s is %s, larger than the maximum %d", what(), shorten(s), max)
	}
	return v, nil
}

// checkLayout sorts the entries by offset and checks that they tile the data
// buffer exactly: no overlap (two tensors sharing bytes, so that changing one
// changes the other), no hole and no trailing bytes (room for a second
// payload, the trick behind polyglot files).
func checkLayout(h *Header) error {
	sort.Slice(h.Entries, func(i, j int) bool {
		a, b := h.Entries[i], h.Entries[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		if a.End != b.End {
			return a.End < b.End
		}
		return a.Name < b.Name
	})
	var next int64 // where the next tensor must begin
	// prev is the index of the first tensor that reached next, so that a
	// zero-size tensor sitting at next does not take its place in messages.
	prev := -1
	for i, e := range h.Entries {
		switch {
		case e.Begin < next:
			p := h.Entries[prev]
			return formatErr("tensor %q: data_offsets [%d, %d] overlap tensor %q at [%d, %d]", shorten(e.Name), e.Begin, e.End, shorten(p.Name), p.Begin, p.End)
		case e.Begin > next && next == 0:
			return formatErr("tensor %q: data_offsets begin %d leaves a hole of %d bytes at the start of the data buffer; tensors must cover it contiguously from 0", shorten(e.Name), e.Begin, e.Begin-next)
		case e.Begin > next:
			return formatErr("tensor %q: data_offsets begin %d leaves a hole of %d bytes after tensor %q, which ends at %d; tensors must cover the data buffer contiguously", shorten(e.Name), e.Begin, e.Begin-next, shorten(h.Entries[prev].Name), next)
		}
		if e.End > next || prev < 0 {
			prev = i
		}
		next = e.End
	}
	if next != h.DataLen {
		// Entries never end past DataLen (entry checks that), so these
		// are extra bytes.
		return formatErr("%d trailing bytes after the last tensor: the data buffer is %d bytes but the tensors end at %d", h.DataLen-next, h.DataLen, next)
	}
	return nil
}
