package classifier

import (
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Features are hashed character 3-, 4- and 5-grams and word 1- and
// 2-grams of the lower-cased text, each hashed into one of Dim buckets with
// a sign from another bit of the hash (so that collisions cancel on
// average rather than add), weighted by 1+log(count) and scaled to unit
// length. Character n-grams see through spelling tricks, casing and
// punctuation; word n-grams carry phrases ("previous instructions").
//
// Hashing is FNV-1a over the code points, written out here because the
// per-n-gram cost is the classifier's whole run time and an incremental
// loop avoids allocating each n-gram.

// Dim is the number of feature buckets.
const Dim = 1 << 18

// minEvidence is the squared length below which a feature vector is not
// scaled up to unit length (see features).
const minEvidence = 64

// WindowRunes bounds what one feature vector reads.
const WindowRunes = 8192

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// vector is a sparse feature vector.
type vector struct {
	idx []uint32
	val []float32
}

// extractor keeps buffers between calls; not safe for concurrent use.
type extractor struct {
	runes   []rune
	keys    []uint32
	counts  []int32  // per bucket, valid where stamp == gen
	stamp   []uint32 //
	gen     uint32
	touched []uint32
	vidx    []uint32 // view's buffers
	vval    []float32
}

// features returns the feature vector of s (at most WindowRunes of it),
// in slices of its own.
func (e *extractor) features(s string) vector {
	v := e.view(s)
	return vector{idx: slices.Clone(v.idx), val: slices.Clone(v.val)}
}

// view is features in the extractor's buffers, valid until its next call:
// classifying reads each chunk's vector once, and allocating one per chunk
// was a tenth of the time.
func (e *extractor) view(s string) vector {
	e.runes = e.runes[:0]
	e.runes = append(e.runes, ' ')
	space := true
	for _, c := range s {
		if len(e.runes) > WindowRunes {
			break
		}
		if isSpace(c) {
			if !space {
				e.runes = append(e.runes, ' ')
			}
			space = true
			continue
		}
		space = false
		e.runes = append(e.runes, toLower(c))
	}
	if !space {
		e.runes = append(e.runes, ' ')
	}
	r := e.runes
	e.keys = e.keys[:0]
	// Character n-grams, n = 3..5.
	for i := range r {
		h := uint64(fnvOffset)
		for n := 1; n <= 5 && i+n <= len(r); n++ {
			h = (h ^ uint64(r[i+n-1])) * fnvPrime
			if n >= 3 {
				e.keys = append(e.keys, key(h, uint64(n)))
			}
		}
	}
	// Word 1- and 2-grams over runs of letters and digits.
	var prev uint64
	havePrev := false
	for i := 0; i < len(r); {
		if !isWord(r[i]) {
			i++
			continue
		}
		h := uint64(fnvOffset)
		for ; i < len(r) && isWord(r[i]); i++ {
			h = (h ^ uint64(r[i])) * fnvPrime
		}
		e.keys = append(e.keys, key(h, 11))
		if havePrev {
			e.keys = append(e.keys, key((prev^h)*fnvPrime+h, 12))
		}
		prev, havePrev = h, true
	}
	// Merge equal buckets in a dense scratch array (a generation stamp
	// marks the buckets this call touched): linear in the n-grams, where
	// sorting them cost a third of the run time.
	if e.counts == nil {
		e.counts = make([]int32, Dim)
		e.stamp = make([]uint32, Dim)
	}
	e.gen++
	if e.gen == 0 { // wrapped: clear the stamps once every 2^32 calls
		clear(e.stamp)
		e.gen = 1
	}
	e.touched = e.touched[:0]
	for _, k := range e.keys {
		b := k >> 1
		if e.stamp[b] != e.gen {
			e.stamp[b] = e.gen
			e.counts[b] = 0
			e.touched = append(e.touched, b)
		}
		if k&1 == 1 {
			e.counts[b]--
		} else {
			e.counts[b]++
		}
	}
	v := vector{idx: e.vidx[:0], val: e.vval[:0]}
	var norm float64
	for _, b := range e.touched {
		c := e.counts[b]
		if c == 0 {
			continue
		}
		w := tfWeight(c)
		v.idx = append(v.idx, b)
		v.val = append(v.val, float32(w))
		norm += w * w
	}
	e.vidx, e.vval = v.idx, v.val
	if norm > 0 {
		// Unit length, except that a text of few features keeps a shorter
		// vector: "hi" has four, and scaled to unit length they decide
		// alone, with the weight "hi" has from the jailbreaks that open
		// with "Hi ChatGPT". Below minEvidence the vector shrinks with
		// the square root of its size and the score tends to the bias.
		inv := float32(1 / math.Sqrt(max(norm, minEvidence)))
		for i := range v.val {
			v.val[i] *= inv
		}
	}
	return v
}

// logTab[n] is 1 + log(n): counts are small integers, and the table
// saves a logarithm per feature.
var logTab = func() (t [256]float64) {
	for n := 1; n < len(t); n++ {
		t[n] = 1 + math.Log(float64(n))
	}
	return t
}()

// tfWeight is the signed 1 + log|c| of a bucket's signed count.
func tfWeight(c int32) float64 {
	a := max(c, -c)
	var w float64
	if a < int32(len(logTab)) {
		w = logTab[a]
	} else {
		w = 1 + math.Log(float64(a))
	}
	if c < 0 {
		return -w
	}
	return w
}

func isWord(c rune) bool {
	if c < utf8.RuneSelf {
		return c|0x20 >= 'a' && c|0x20 <= 'z' || c >= '0' && c <= '9'
	}
	return unicode.IsLetter(c) || unicode.IsDigit(c)
}

// isSpace and toLower are unicode's with the ASCII case done inline: the
// feature loop runs them on every character.
func isSpace(c rune) bool {
	if c < utf8.RuneSelf {
		return c == ' ' || c >= '\t' && c <= '\r'
	}
	return unicode.IsSpace(c)
}

func toLower(c rune) rune {
	if c < utf8.RuneSelf {
		if c >= 'A' && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	return unicode.ToLower(c)
}

// key mixes the n-gram kind into the hash and returns bucket<<1 | sign.
func key(h, kind uint64) uint32 {
	h ^= kind * 0x9E3779B97F4A7C15
	h ^= h >> 29
	h *= 0xBF58476D1CE4E5B9
	h ^= h >> 32
	return uint32(h%Dim)<<1 | uint32(h>>63)
}

// ChunkRunes is the size of the pieces a text is read in. An injection
// is usually a sentence or two planted in a document; read whole, a long
// document dilutes it into the document's own n-grams, read in pieces of
// about this size, the piece that holds it stands out.
const ChunkRunes = 200

// chunks splits s into pieces of at most ChunkRunes runes: lines, and
// sentences within long lines, merged while they fit; a run with no
// sentence break is cut every ChunkRunes runes with a quarter overlap so
// that a phrase cut at one edge is whole in the next piece.
func chunks(s string) []string {
	if fits(s, ChunkRunes) {
		return []string{s}
	}
	var pieces []string
	for _, line := range strings.SplitAfter(s, "\n") {
		for len(line) > 0 {
			if fits(line, ChunkRunes) {
				pieces = append(pieces, line)
				break
			}
			// Cut after the last sentence end within the limit, or at the
			// limit.
			lim := byteIndexOfRune(line, ChunkRunes)
			cut := strings.LastIndexAny(line[:lim], ".!?;:")
			if cut > lim/4 {
				pieces = append(pieces, line[:cut+1])
				line = line[cut+1:]
				continue
			}
			pieces = append(pieces, line[:lim])
			line = line[byteIndexOfRune(line, ChunkRunes*3/4):]
		}
	}
	var out []string
	var cur strings.Builder
	n := 0
	for _, p := range pieces {
		pn := utf8.RuneCountInString(p)
		if n > 0 && n+pn > ChunkRunes {
			out = append(out, cur.String())
			cur.Reset()
			n = 0
		}
		cur.WriteString(p)
		n += pn
	}
	if n > 0 {
		out = append(out, cur.String())
	}
	return out
}

// fits reports whether s has at most n runes, counting no further than
// n+1 (counting whole lines again and again was quadratic in a long line).
func fits(s string, n int) bool {
	if len(s) <= n {
		return true
	}
	for range s {
		if n--; n < 0 {
			return false
		}
	}
	return true
}

// byteIndexOfRune is the byte offset of the n-th rune of s (len(s) if s
// is shorter).
func byteIndexOfRune(s string, n int) int {
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return len(s)
}

// lower is strings.ToLower for the rule matcher.
var lower = strings.ToLower
