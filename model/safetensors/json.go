package safetensors

import (
	"unicode/utf16"
	"unicode/utf8"
)

// jsonReader is a small strict reader for the JSON of a header.
//
// We do not use encoding/json here. Unmarshal silently keeps the last of
// duplicate keys, and turns lone UTF-16 surrogate escapes into U+FFFD, so two
// different names can decode to the same string; both are the kind of
// ambiguity an attacker uses to show a scanner one thing and a loader another.
// Its token API can be made to catch duplicates, but it allocates for every
// token (about 80 allocations per tensor entry when we measured it, and over
// 30 bytes allocated per header byte), so a hostile 100 MB header would cost
// gigabytes. This reader follows RFC 8259 with no extensions, allocates
// little beyond the strings it returns, and reports errors with their offset
// in the header. FuzzJSON checks it against encoding/json.
//
// The input must already be known to be valid UTF-8.
type jsonReader struct {
	b   []byte
	pos int
}

// next skips whitespace and returns the next byte without consuming it; ok
// is false at the end of the input.
func (r *jsonReader) next() (c byte, ok bool) {
	for r.pos < len(r.b) {
		switch r.b[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return r.b[r.pos], true
		}
	}
	return 0, false
}

// consume skips whitespace and consumes c if it comes next.
func (r *jsonReader) consume(c byte) bool {
	if d, ok := r.next(); ok && d == c {
		r.pos++
		return true
	}
	return false
}

// syntaxErr reports a JSON syntax error at the current position. expected
// says what should have been there.
func (r *jsonReader) syntaxErr(expected string) error {
	if r.pos >= len(r.b) {
		return formatErr("header JSON ends before the object is closed (expected %s at header offset %d)", expected, r.pos)
	}
	c, _ := utf8.DecodeRune(r.b[r.pos:])
	return formatErr("header is not valid JSON: expected %s, found %q at header offset %d", expected, c, r.pos)
}

// members reads an object, which must come next, calling member for each key
// with the reader positioned at the value; member must read the value. It
// does not check for duplicate keys: each caller does, so that its error can
// say which object and what the key means there.
func (r *jsonReader) members(member func(key string) error) error {
	if !r.consume('{') {
		return r.syntaxErr("'{'")
	}
	if r.consume('}') {
		return nil
	}
	for {
		if c, ok := r.next(); !ok || c != '"' {
			return r.syntaxErr("a string key")
		}
		key, err := r.readString()
		if err != nil {
			return err
		}
		if !r.consume(':') {
			return r.syntaxErr("':' after an object key")
		}
		if err := member(key); err != nil {
			return err
		}
		if r.consume(',') {
			continue
		}
		if r.consume('}') {
			return nil
		}
		return r.syntaxErr("',' or '}' after an object member")
	}
}

// elements reads an array, which must come next, calling element for each
// element with the reader positioned at it; element must read it.
func (r *jsonReader) elements(element func() error) error {
	if !r.consume('[') {
		return r.syntaxErr("'['")
	}
	if r.consume(']') {
		return nil
	}
	for {
		if err := element(); err != nil {
			return err
		}
		if r.consume(',') {
			continue
		}
		if r.consume(']') {
			return nil
		}
		return r.syntaxErr("',' or ']' after an array element")
	}
}

// readString reads a string, which must come next, and returns its value.
func (r *jsonReader) readString() (string, error) {
	if !r.consume('"') {
		return "", r.syntaxErr("a string")
	}
	start := r.pos
	// Most strings have no escapes: return them with a single copy.
	i := start
	for i < len(r.b) && r.b[i] != '"' && r.b[i] != '\\' && r.b[i] >= 0x20 {
		i++
	}
	if i < len(r.b) && r.b[i] == '"' {
		r.pos = i + 1
		return string(r.b[start:i]), nil
	}
	buf := append([]byte(nil), r.b[start:i]...)
	for {
		r.pos = i
		if i >= len(r.b) {
			return "", r.syntaxErr("'\"' to close a string")
		}
		c := r.b[i]
		switch {
		case c == '"':
			r.pos = i + 1
			return string(buf), nil
		case c < 0x20:
			return "", r.syntaxErr("no control characters in a string (they must be escaped)")
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		// An escape.
		if i+1 >= len(r.b) {
			r.pos = i + 1
			return "", r.syntaxErr("an escaped character after '\\'")
		}
		switch e := r.b[i+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			c1, ok := hex4(r.b, i+2)
			if !ok {
				r.pos = i
				return "", r.syntaxErr(`four hex digits after \u`)
			}
			if !utf16.IsSurrogate(c1) {
				buf = utf8.AppendRune(buf, c1)
				i += 6
				continue
			}
			// A surrogate must be a high one followed by an escaped low
			// one. Anything else has no Unicode meaning; the reference
			// parser refuses it, and encoding/json would quietly turn it
			// into U+FFFD, merging distinct names.
			c2, ok := rune(0), false
			if i+7 < len(r.b) && r.b[i+6] == '\\' && r.b[i+7] == 'u' {
				c2, ok = hex4(r.b, i+8)
			}
			if c1 >= 0xdc00 || !ok || c2 < 0xdc00 || c2 > 0xdfff {
				return "", formatErr("header has a lone UTF-16 surrogate escape \\u%04x at header offset %d", c1, i)
			}
			buf = utf8.AppendRune(buf, utf16.DecodeRune(c1, c2))
			i += 12
			continue
		default:
			r.pos = i + 1
			return "", r.syntaxErr(`one of "\/bfnrtu after '\' in a string`)
		}
		i += 2
	}
}

// hex4 decodes the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var v rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// readNumber reads a number, which must come next, and returns its text,
// following the JSON grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (r *jsonReader) readNumber() (string, error) {
	r.next()
	start := r.pos
	i := start
	digits := func() bool {
		j := i
		for i < len(r.b) && '0' <= r.b[i] && r.b[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < len(r.b) && r.b[i] == '-' {
		i++
	}
	if i < len(r.b) && r.b[i] == '0' {
		i++ // a leading zero stands alone: "01" is not a number
	} else if !digits() {
		r.pos = i
		return "", r.syntaxErr("a digit in a number")
	}
	if i < len(r.b) && r.b[i] == '.' {
		i++
		if !digits() {
			r.pos = i
			return "", r.syntaxErr("a digit after the decimal point")
		}
	}
	if i < len(r.b) && (r.b[i] == 'e' || r.b[i] == 'E') {
		i++
		if i < len(r.b) && (r.b[i] == '+' || r.b[i] == '-') {
			i++
		}
		if !digits() {
			r.pos = i
			return "", r.syntaxErr("a digit in an exponent")
		}
	}
	r.pos = i
	return string(r.b[start:i]), nil
}

// literal consumes the word lit (true, false or null), which must come next.
func (r *jsonReader) literal(lit string) error {
	r.next()
	if len(r.b)-r.pos < len(lit) || string(r.b[r.pos:r.pos+len(lit)]) != lit {
		return r.syntaxErr(lit)
	}
	r.pos += len(lit)
	return nil
}

// maxSkipDepth bounds the nesting of values the schema does not describe
// (unknown fields, values of the wrong type). Without it, a header of nothing
// but '[' would recurse once per byte.
const maxSkipDepth = 64

// skipValue reads and discards one value of any type, still checking its
// syntax and refusing duplicate keys in its objects, so that the whole header
// obeys one set of rules. what names the value in errors.
func (r *jsonReader) skipValue(what string, depth int) error {
	c, ok := r.next()
	if !ok {
		return r.syntaxErr("a value")
	}
	switch {
	case c == '{' || c == '[':
		if depth >= maxSkipDepth {
			return formatErr("%s is nested deeper than %d levels", what, maxSkipDepth)
		}
		if c == '[' {
			return r.elements(func() error { return r.skipValue(what, depth+1) })
		}
		seen := map[string]bool{}
		return r.members(func(key string) error {
			if seen[key] {
				return formatErr("duplicate key %q in %s", shorten(key), what)
			}
			seen[key] = true
			return r.skipValue(what, depth+1)
		})
	case c == '"':
		_, err := r.readString()
		return err
	case c == '-' || ('0' <= c && c <= '9'):
		_, err := r.readNumber()
		return err
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	}
	return r.syntaxErr("a value")
}

// found reads a value that is not of the type the schema wants and returns a
// description of it for the error message ("a JSON array", "the number 3").
// A syntax error inside the value is returned instead, since that is the real
// problem.
func (r *jsonReader) found(what string) (string, error) {
	c, _ := r.next()
	start := r.pos
	if err := r.skipValue(what, 0); err != nil {
		return "", err
	}
	switch c {
	case '{':
		return "a JSON object", nil
	case '[':
		return "a JSON array", nil
	case '"':
		return "a string", nil
	case 't', 'f':
		return "a boolean", nil
	case 'n':
		return "null", nil
	}
	return "the number " + shorten(string(r.b[start:r.pos])), nil
}
