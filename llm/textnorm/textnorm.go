// Package textnorm undoes the evasions that change how a prompt looks
// without changing what a language model reads, so that a classifier sees
// the text the model will act on, and reports what it undid.
//
// The steps, in order: invalid UTF-8 is replaced; text smuggled in Unicode
// tag characters (U+E0020–U+E007E, invisible in most renderers but read by
// many tokenisers) is decoded into Result.Hidden; invisible characters
// (format controls such as zero-width spaces and joiners, bidi overrides,
// the soft hyphen, variation selectors) are removed; the text is put in
// NFKC form (full-width and mathematical letters become ASCII); letters of
// other scripts that look like Latin ones are folded onto them within
// words that are mostly Latin; and runs of base64, hex and rot13 are
// decoded into Result.Decoded, each normalised again (to a bounded depth),
// because a model asked to decode them will read what they say. The runs
// that were decoded, and long runs that look like encoded data, are then
// taken out of Text: their decodings are read instead.
//
// Leetspeak ("1gn0r3") is folded in a separate copy of the text
// (Result.Folded) rather than in Text: digits carry meaning in ordinary
// prompts, so the classifier scores both.
package textnorm

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits bound the work on hostile input.
const (
	// MaxDepth is how many times decoded text is itself decoded.
	MaxDepth = 2
	// MaxDecoded is the number of decoded segments kept per call.
	MaxDecoded = 16
	// minEncoded is the shortest run taken for base64 or hex: shorter runs
	// are too often identifiers, hashes of nothing, or ordinary words.
	minEncoded = 16
)

// Decoded is a segment of the text that was encoded, with its decoding.
type Decoded struct {
	Encoding string `json:"encoding"` // base64, hex or rot13
	Text     string `json:"text"`     // normalised
}

// Result is a normalised text and what normalising it found.
type Result struct {
	Text       string    `json:"-"`
	Folded     string    `json:"-"` // Text with leetspeak folded; "" when it has none
	Hidden     string    `json:"hidden,omitempty"`
	Invisible  int       `json:"invisible,omitempty"`
	Homoglyphs int       `json:"homoglyphs,omitempty"`
	InvalidUTF int       `json:"invalid_utf8,omitempty"`
	Decoded    []Decoded `json:"decoded,omitempty"`
	// EncodedRuns is the number of encoded runs taken out of Text.
	EncodedRuns int `json:"encoded_runs,omitempty"`

	runs             []string // the runs of the top-level text that were decoded
	hexRuns, b64Runs []string // the candidate runs of the top-level text
}

// Segments is every text the classifier should read: the text, its
// leetspeak folding, the hidden text and the decoded segments.
func (r *Result) Segments() []string {
	s := []string{r.Text}
	if r.Folded != "" {
		s = append(s, r.Folded)
	}
	if r.Hidden != "" {
		s = append(s, r.Hidden)
	}
	for _, d := range r.Decoded {
		s = append(s, d.Text)
	}
	return s
}

// Normalize normalises s.
func Normalize(s string) Result {
	var r Result
	r.Text = r.clean(s)
	if h := r.Hidden; h != "" {
		// Hidden text gets the same treatment as visible text.
		var sub Result
		r.Hidden = sub.clean(h)
		r.Invisible += sub.Invisible
		r.Homoglyphs += sub.Homoglyphs
	}
	r.decode(r.Text, 0)
	if r.Hidden != "" {
		r.decode(r.Hidden, 0)
	}
	r.Text = r.dropEncoded(r.Text)
	r.Folded = foldLeet(r.Text)
	return r
}

// dropEncoded replaces with a space the runs of s that were decoded and the
// long runs that look like encoded data (base64 with digits and both
// cases, or hex, of 32 characters or more). Their decodings are read
// separately; the runs themselves are noise to a text classifier, and
// noise that resembles the gibberish of adversarial suffixes.
func (r *Result) dropEncoded(s string) string {
	var drop []string
	for _, m := range r.hexRuns {
		if len(m) >= 32 || r.decodedRun(m) {
			drop = append(drop, m)
		}
	}
	for _, m := range r.b64Runs {
		if (len(m) >= 32 && looksEncoded(m)) || r.decodedRun(m) {
			drop = append(drop, m)
		}
	}
	if len(drop) == 0 {
		return s
	}
	r.EncodedRuns += len(drop)
	for _, m := range drop {
		s = strings.Replace(s, m, " ", 1)
	}
	return s
}

// decodedRun reports whether run m was decoded into r.Decoded.
func (r *Result) decodedRun(m string) bool {
	for _, d := range r.runs {
		if d == m {
			return true
		}
	}
	return false
}

// looksEncoded reports a run with digits and both letter cases: base64 of
// anything, and almost never a word or an identifier.
func looksEncoded(m string) bool {
	var up, low, dig bool
	for i := 0; i < len(m); i++ {
		c := m[i]
		up = up || c >= 'A' && c <= 'Z'
		low = low || c >= 'a' && c <= 'z'
		dig = dig || c >= '0' && c <= '9' || c == '+' || c == '/'
	}
	return up && low && dig
}

// clean does every step but decoding.
func (r *Result) clean(s string) string {
	if !utf8.ValidString(s) {
		for i := 0; i < len(s); {
			c, n := utf8.DecodeRuneInString(s[i:])
			if c == utf8.RuneError && n == 1 {
				r.InvalidUTF++
			}
			i += n
		}
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b, hidden strings.Builder
	b.Grow(len(s))
	for _, c := range s {
		switch {
		case c >= ' ' && c < 0x7F: // printable ASCII: the common case
			b.WriteByte(byte(c))
		case c >= 0xE0020 && c <= 0xE007E:
			hidden.WriteRune(c - 0xE0000)
			r.Invisible++
		case invisible(c):
			r.Invisible++
		default:
			b.WriteRune(c)
		}
	}
	if hidden.Len() > 0 {
		r.Hidden += hidden.String()
	}
	t := norm.NFKC.String(b.String())
	t, n := foldHomoglyphs(t)
	r.Homoglyphs += n
	return t
}

// Invisible reports characters that render as nothing: the format and
// control characters Normalize removes, tag characters included.
func Invisible(c rune) bool { return invisible(c) }

// invisible reports characters that render as nothing. Line breaks and tabs
// are kept; they carry structure.
func invisible(c rune) bool {
	switch {
	case c == '\n' || c == '\t' || c == '\r':
		return false
	case c >= 0xFE00 && c <= 0xFE0F, c >= 0xE0100 && c <= 0xE01EF: // variation selectors
		return true
	case c == 0x034F || c == 0x115F || c == 0x1160 || c == 0x3164 || c == 0xFFA0: // grapheme joiner, Hangul fillers
		return true
	}
	return unicode.Is(unicode.Cf, c) || unicode.Is(unicode.Cc, c)
}

// confusables maps letters of other scripts that render like a Latin
// letter to it. Our own selection of the Cyrillic, Greek and Latin-extended
// look-alikes that prompt-smuggling tools use; NFKC already handles the
// full-width and mathematical alphabets.
var confusables = map[rune]rune{
	// Cyrillic
	'а': 'a', 'в': 'b', 'с': 'c', 'ԁ': 'd', 'е': 'e', 'һ': 'h', 'і': 'i', 'ј': 'j', 'к': 'k',
	'ӏ': 'l', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p', 'ԛ': 'q', 'г': 'r', 'ѕ': 's', 'т': 't',
	'ц': 'u', 'ѵ': 'v', 'ԝ': 'w', 'х': 'x', 'у': 'y', 'ɡ': 'g', 'ѡ': 'w',
	'А': 'A', 'В': 'B', 'С': 'C', 'Е': 'E', 'Н': 'H', 'І': 'I', 'Ј': 'J', 'К': 'K', 'М': 'M',
	'О': 'O', 'Р': 'P', 'Ѕ': 'S', 'Т': 'T', 'Х': 'X', 'У': 'Y', 'Ԁ': 'D', 'Ԛ': 'Q', 'Ԝ': 'W',
	// Greek
	'α': 'a', 'β': 'b', 'ε': 'e', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p', 'τ': 't',
	'υ': 'u', 'χ': 'x', 'γ': 'y',
	'Α': 'A', 'Β': 'B', 'Ε': 'E', 'Ζ': 'Z', 'Η': 'H', 'Ι': 'I', 'Κ': 'K', 'Μ': 'M', 'Ν': 'N',
	'Ο': 'O', 'Ρ': 'P', 'Τ': 'T', 'Υ': 'Y', 'Χ': 'X',
	// Latin extended and IPA
	'ı': 'i', 'ȷ': 'j', 'ɑ': 'a', 'ɩ': 'i', 'ʏ': 'y', 'ᴀ': 'a', 'ʙ': 'b', 'ᴄ': 'c', 'ᴅ': 'd',
	'ᴇ': 'e', 'ɢ': 'g', 'ʜ': 'h', 'ɪ': 'i', 'ᴊ': 'j', 'ᴋ': 'k', 'ʟ': 'l', 'ᴍ': 'm', 'ɴ': 'n',
	'ᴏ': 'o', 'ᴘ': 'p', 'ʀ': 'r', 'ᴛ': 't', 'ᴜ': 'u', 'ᴠ': 'v', 'ᴡ': 'w', 'ᴢ': 'z',
}

// foldHomoglyphs folds confusables in words that also hold Latin letters,
// and in words spelled entirely in look-alikes when the text around them is
// Latin; it leaves genuine Cyrillic or Greek text alone ("как" is a Russian
// word in Russian text and an evasion in English text). It returns the
// number of letters folded.
func foldHomoglyphs(s string) (string, int) {
	if isASCII(s) {
		return s, 0
	}
	latinText, otherText := 0, 0
	for _, c := range s {
		switch {
		case c < utf8.RuneSelf && isAlpha(byte(c)):
			latinText++
		case confusables[c] == 0 && unicode.IsLetter(c):
			otherText++
		}
	}
	foldPure := latinText >= 9*otherText
	var b strings.Builder
	b.Grow(len(s))
	n := 0
	for start := 0; start < len(s); {
		// Split into words and the runs between them.
		end := start
		letter := false
		for end < len(s) {
			c, w := utf8.DecodeRuneInString(s[end:])
			if end == start {
				letter = unicode.IsLetter(c)
			} else if unicode.IsLetter(c) != letter {
				break
			}
			end += w
		}
		word := s[start:end]
		start = end
		if !letter || isASCII(word) {
			b.WriteString(word)
			continue
		}
		latin, conf, other := 0, 0, 0
		for _, c := range word {
			switch {
			case c < utf8.RuneSelf:
				latin++
			case confusables[c] != 0:
				conf++
			default:
				other++
			}
		}
		if conf == 0 || (latin == 0 && (other > 0 || !foldPure)) {
			b.WriteString(word)
			continue
		}
		for _, c := range word {
			if f := confusables[c]; f != 0 {
				b.WriteRune(f)
				n++
			} else {
				b.WriteRune(c)
			}
		}
	}
	return b.String(), n
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// leet maps the digits and symbols of leetspeak to letters.
var leet = map[byte]byte{'0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't', '@': 'a', '$': 's', '!': 'i', '|': 'l'}

// foldLeet returns s with leetspeak folded in words that mix letters and
// leet characters ("1gn0r3", "pr0mpt"), or "" if there are none. Numbers
// on their own are left alone.
func foldLeet(s string) string {
	changed := false
	b := []byte(s)
	for i := 0; i < len(b); {
		j := i
		letters, leets := 0, 0
		for j < len(b) && (isAlpha(b[j]) || leet[b[j]] != 0 || (b[j] >= '0' && b[j] <= '9')) {
			if isAlpha(b[j]) {
				letters++
			} else if leet[b[j]] != 0 {
				leets++
			}
			j++
		}
		if j == i {
			i++
			continue
		}
		// A word needs letters to be leetspeak, and "!" or "|" only count
		// inside a word, not as its punctuation.
		if letters > 0 && leets > 0 {
			for k := i; k < j; k++ {
				if f := leet[b[k]]; f != 0 && (k > i && k < j-1 || (b[k] != '!' && b[k] != '|')) {
					b[k] = f
					changed = true
				}
			}
		}
		i = j
	}
	if !changed {
		return ""
	}
	return string(b)
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// runs returns the maximal runs of s made of bytes in the set in, with
// single separators from sep (nil: none) allowed between them, at least
// min bytes long (at most MaxDecoded of them). A hand-written scan over
// byte tables: the equivalent regular expressions were most of
// Normalize's time on long texts.
func runs(s string, min int, in, sep *byteSet) []string {
	var out []string
	for i := 0; i < len(s) && len(out) < MaxDecoded; {
		if !in[s[i]] {
			i++
			continue
		}
		j := i
		for j < len(s) && (in[s[j]] || (sep != nil && sep[s[j]] && j+1 < len(s) && in[s[j+1]] && j > i && !sep[s[j-1]])) {
			j++
		}
		if j-i >= min {
			out = append(out, s[i:j])
		}
		i = j
	}
	return out
}

// byteSet is a set of bytes.
type byteSet [256]bool

func setOf(chars string) *byteSet {
	var b byteSet
	for i := 0; i < len(chars); i++ {
		b[chars[i]] = true
	}
	return &b
}

var (
	base64Set = setOf("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-=")
	hexSet    = setOf("0123456789abcdefABCDEF")
	hexSepSet = setOf(" :")
)

// decode adds the encoded segments of s to r.Decoded.
func (r *Result) decode(s string, depth int) {
	if depth >= MaxDepth {
		return
	}
	add := func(enc, run, raw string) {
		if len(r.Decoded) >= MaxDecoded || !readable(raw) {
			return
		}
		if depth == 0 {
			r.runs = append(r.runs, run)
		}
		var sub Result
		t := sub.clean(raw)
		r.Invisible += sub.Invisible
		r.Homoglyphs += sub.Homoglyphs
		r.Decoded = append(r.Decoded, Decoded{Encoding: enc, Text: t})
		r.decode(t, depth+1)
	}
	hexRuns, b64Runs := runs(s, minEncoded, hexSet, hexSepSet), runs(s, minEncoded, base64Set, nil)
	if depth == 0 && s == r.Text {
		r.hexRuns, r.b64Runs = hexRuns, b64Runs
	}
	for _, m := range hexRuns {
		h := strings.NewReplacer(" ", "", ":", "").Replace(m)
		if len(h)%2 == 1 {
			h = h[:len(h)-1]
		}
		if raw, err := hex.DecodeString(h); err == nil {
			add("hex", m, string(raw))
		}
	}
	for _, m := range b64Runs {
		if isHex(m) {
			continue // decoded as hex above
		}
		if raw, ok := decodeBase64(m); ok {
			add("base64", m, raw)
		}
	}
	// rot13 is tried on each line, so that one encoded line in a document
	// is found too.
	for line := range strings.SplitSeq(s, "\n") {
		if !maybeRot13(line) {
			continue
		}
		if t := rot13(line); englishier(t, line) {
			add("rot13", "", t)
		}
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func decodeBase64(m string) (string, bool) {
	t := strings.TrimRight(m, "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if raw, err := enc.DecodeString(t); err == nil {
			return string(raw), true
		}
		// A run cut mid-quantum by the regexp still decodes in part.
		if len(t) > 4 {
			if raw, err := enc.DecodeString(t[:len(t)/4*4]); err == nil {
				return string(raw), true
			}
		}
	}
	return "", false
}

// readable reports whether decoded bytes are text: valid UTF-8, at least
// eight characters, and mostly letters and spaces. Random bytes decoded
// from an identifier that happened to look like base64 fail this.
func readable(s string) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) < 8 {
		return false
	}
	letters, bad, total := 0, 0, 0
	for _, c := range s {
		total++
		switch {
		case unicode.IsLetter(c) || c == ' ':
			letters++
		case c == utf8.RuneError || (unicode.IsControl(c) && c != '\n' && c != '\t' && c != '\r'):
			bad++
		}
	}
	return bad == 0 && letters*10 >= total*7
}

func rot13(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			b[i] = 'A' + (c-'A'+13)%26
		}
	}
	return string(b)
}

// common are frequent English words; rot13 text has almost none of them
// and its decoding has many.
var common = map[string]bool{
	"the": true, "and": true, "you": true, "to": true, "of": true, "is": true, "a": true,
	"in": true, "that": true, "it": true, "for": true, "your": true, "are": true, "with": true,
	"this": true, "be": true, "not": true, "all": true, "me": true, "on": true, "what": true,
	"how": true, "can": true, "do": true, "i": true, "my": true, "from": true, "as": true,
	"ignore": true, "instructions": true, "previous": true, "prompt": true, "system": true, "tell": true,
}

// englishier reports whether t, a rot13 decoding of s, reads as English
// and s does not.
func englishier(t, s string) bool {
	ct, _ := commonWords(t)
	cs, _ := commonWords(s)
	return ct >= 3 && ct >= 3*cs+2
}

// maybeRot13 is the cheap test before englishier: a line whose own common
// words already exceed a third of its words cannot be beaten by its
// decoding.
func maybeRot13(s string) bool {
	cs, words := commonWords(s)
	return words >= 3 && 3*cs+2 <= words
}

// commonWords counts the words of s and those of them in common, without
// allocating (it runs on every line of every text).
func commonWords(s string) (hits, words int) {
	var buf [12]byte
	for i := 0; i < len(s); {
		c, w := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsLetter(c) {
			i += w
			continue
		}
		n, ascii := 0, true
		for i < len(s) {
			c, w = utf8.DecodeRuneInString(s[i:])
			if !unicode.IsLetter(c) {
				break
			}
			if c >= utf8.RuneSelf {
				ascii = false
			} else if n < len(buf) {
				buf[n] = byte(c) | 0x20
			}
			n++
			i += w
		}
		words++
		if ascii && n <= len(buf) && common[string(buf[:n])] {
			hits++
		}
	}
	return hits, words
}

// Words splits s into lower-cased runs of letters and digits.
func Words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// ShareWords reports whether a and b have n consecutive words in common
// (compared as Words gives them): how the guard spots an answer that
// recites its system prompt, and the scanner an answer that only echoes
// its attack.
func ShareWords(a, b string, n int) bool {
	aw, bw := Words(a), Words(b)
	if n <= 0 || len(aw) < n || len(bw) < n {
		return false
	}
	have := map[string]bool{}
	for i := 0; i+n <= len(aw); i++ {
		have[strings.Join(aw[i:i+n], " ")] = true
	}
	for i := 0; i+n <= len(bw); i++ {
		if have[strings.Join(bw[i:i+n], " ")] {
			return true
		}
	}
	return false
}
