package scan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
)

// GGUF (llama.cpp) is a header of typed key/value metadata, a table of
// tensor descriptions (name, shape, ggml type, offset) and the aligned
// tensor data. Native loaders have had memory-safety bugs on exactly the
// fields checked here: counts that cannot fit in the file, offsets and
// sizes outside the data, misaligned or overlapping tensors. One metadata
// value is also code: tokenizer.chat_template is a Jinja template that
// some runtimes render without a sandbox (CVE-2024-34359).

// ggmlTypes gives (block size in elements, bytes per block) per ggml_type.
var ggmlTypes = map[uint32][2]int64{
	0: {1, 4}, 1: {1, 2}, 2: {32, 18}, 3: {32, 20}, 6: {32, 22}, 7: {32, 24}, 8: {32, 34},
	9: {32, 36}, 10: {256, 84}, 11: {256, 110}, 12: {256, 144}, 13: {256, 176},
	14: {256, 210}, 15: {256, 292}, 16: {256, 66}, 17: {256, 74}, 18: {256, 98},
	19: {256, 50}, 20: {32, 18}, 21: {256, 110}, 22: {256, 82}, 23: {256, 136},
	24: {1, 1}, 25: {1, 2}, 26: {1, 4}, 27: {1, 8}, 28: {1, 8}, 29: {256, 56},
	30: {1, 2}, 34: {256, 54}, 35: {256, 66}, 39: {32, 17},
}

// ggufScalarSize is the size of each fixed-size metadata value type.
var ggufScalarSize = map[uint32]int64{0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

// templateInjection matches Jinja that reaches Python internals.
var templateInjection = regexp.MustCompile(`(__class__|__globals__|__subclasses__|__builtins__|__import__|__init__|__mro__|__base__|\bpopen\b|os\.system|\bsubprocess\b|\beval\s*\(|\bexec\s*\()`)

// errGGUF is a structural problem; its message is reported.
type errGGUF struct {
	off int64
	msg string
}

func (e *errGGUF) Error() string { return e.msg }

type ggufReader struct {
	w       *windowReader
	version uint32
}

func (g *ggufReader) fail(format string, args ...any) error {
	return &errGGUF{off: g.w.pos, msg: fmt.Sprintf(format, args...)}
}

func (g *ggufReader) u32() (uint32, error) {
	var b [4]byte
	if err := g.w.readFull(b[:]); err != nil {
		return 0, g.fail("truncated")
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

func (g *ggufReader) u64() (uint64, error) {
	var b [8]byte
	if err := g.w.readFull(b[:]); err != nil {
		return 0, g.fail("truncated")
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// count reads a length or count: 32 bits in version 1, 64 after.
func (g *ggufReader) count() (uint64, error) {
	if g.version == 1 {
		v, err := g.u32()
		return uint64(v), err
	}
	return g.u64()
}

// str reads a string, keeping at most keep bytes.
func (g *ggufReader) str(keep int) (string, error) {
	n, err := g.count()
	if err != nil {
		return "", err
	}
	if n > uint64(g.w.remaining()) {
		return "", g.fail("string of %d bytes but only %d remain", n, g.w.remaining())
	}
	b, err := g.w.readKeep(int64(n), keep)
	if err != nil {
		return "", g.fail("truncated")
	}
	return string(b), nil
}

// skipValue skips a metadata value of type t, returning a string value's
// text (kept up to keep bytes) and a uint32 value.
func (g *ggufReader) value(t uint32, keep int, depth int) (string, uint64, error) {
	if sz, ok := ggufScalarSize[t]; ok {
		var b [8]byte
		if err := g.w.readFull(b[:sz]); err != nil {
			return "", 0, g.fail("truncated")
		}
		return "", binary.LittleEndian.Uint64(b[:]), nil
	}
	switch t {
	case 8:
		s, err := g.str(keep)
		return s, 0, err
	case 9:
		if depth > 4 {
			return "", 0, g.fail("arrays nested more than 4 deep")
		}
		et, err := g.u32()
		if err != nil {
			return "", 0, err
		}
		n, err := g.count()
		if err != nil {
			return "", 0, err
		}
		if sz, ok := ggufScalarSize[et]; ok {
			if n > uint64(g.w.remaining())/uint64(sz) {
				return "", 0, g.fail("array of %d values of %d bytes but only %d bytes remain", n, sz, g.w.remaining())
			}
			_ = g.w.skip(int64(n) * sz)
			return "", 0, nil
		}
		// Strings and arrays take at least 8 bytes each.
		if n > uint64(g.w.remaining())/8 {
			return "", 0, g.fail("array of %d values cannot fit in the %d bytes left", n, g.w.remaining())
		}
		for i := uint64(0); i < n; i++ {
			if _, _, err := g.value(et, 0, depth+1); err != nil {
				return "", 0, err
			}
		}
		return "", 0, nil
	}
	return "", 0, g.fail("unknown metadata value type %d", t)
}

type ggufTensor struct {
	name      string
	off, size int64
	at        int64
}

func (fsn *fileScan) scanGGUF(src source) {
	g := &ggufReader{w: newWindowReader(src.r, 0, src.size)}
	err := fsn.ggufParse(src, g)
	var ge *errGGUF
	switch {
	case err == nil:
	case errors.As(err, &ge):
		fsn.unparseable(src, "gguf", ge.off, ge.msg)
	default:
		fsn.ioError(src, err)
	}
}

func (fsn *fileScan) ggufParse(src source, g *ggufReader) error {
	magic, err := g.u32()
	if err != nil || magic != 0x46554747 {
		return &errGGUF{off: 0, msg: "no GGUF magic"}
	}
	if g.version, err = g.u32(); err != nil {
		return err
	}
	if g.version < 1 || g.version > 3 {
		if v := g.version; v>>24 >= 1 && v>>24 <= 3 && v&0xffffff == 0 {
			return g.fail("big-endian GGUF (version %d byte-swapped), which loaders do not read", v>>24)
		}
		return g.fail("unknown version %d", g.version)
	}
	nTensors, err := g.count()
	if err != nil {
		return err
	}
	nKV, err := g.count()
	if err != nil {
		return err
	}
	// Each key/value takes at least 13 bytes and each tensor entry 24:
	// counts beyond that are lies meant to make a loader allocate.
	if nKV > uint64(g.w.remaining())/13 {
		f := fsn.add(src, "gguf", 16, SeverityHigh, "scan.gguf.out-of-bounds", fmt.Sprintf("metadata count %d cannot fit in the %d-byte file: a loader that trusts it over-allocates or reads out of bounds", nKV, src.size))
		f.ATLAS = append([]string(nil), atlasMalformed...)
		return nil
	}
	if nTensors > uint64(g.w.remaining())/24 {
		f := fsn.add(src, "gguf", 8, SeverityHigh, "scan.gguf.out-of-bounds", fmt.Sprintf("tensor count %d cannot fit in the %d-byte file: a loader that trusts it over-allocates or reads out of bounds", nTensors, src.size))
		f.ATLAS = append([]string(nil), atlasMalformed...)
		return nil
	}
	alignment := int64(32)
	keys := map[string]bool{}
	for i := uint64(0); i < nKV; i++ {
		at := g.w.pos
		key, err := g.str(1024)
		if err != nil {
			return err
		}
		if keys[key] {
			fsn.add(src, "gguf", at, SeverityMedium, "scan.gguf.malformed", fmt.Sprintf("metadata key %q appears twice: loaders disagree on which value wins", key))
		}
		keys[key] = true
		t, err := g.u32()
		if err != nil {
			return err
		}
		keep := 0
		if strings.HasPrefix(key, "tokenizer.chat_template") {
			keep = 1 << 20
		}
		s, v, err := g.value(t, keep, 0)
		if err != nil {
			return err
		}
		switch {
		case key == "general.alignment":
			if t != 4 || v == 0 || v&(v-1) != 0 {
				fsn.add(src, "gguf", at, SeverityMedium, "scan.gguf.malformed", fmt.Sprintf("general.alignment must be a power-of-two uint32, is type %d value %d", t, v))
			} else {
				alignment = int64(v)
			}
		case keep > 0 && t == 8:
			if m := templateInjection.FindString(s); m != "" {
				f := fsn.add(src, "gguf", at, SeverityHigh, "scan.gguf.chat-template",
					fmt.Sprintf("%s reaches Python internals (%q): rendered without a sandbox, the template runs code (server-side template injection, as in CVE-2024-34359)", key, m))
				f.Args = shortText(s)
				f.ATLAS = append([]string(nil), atlasCode...)
			}
		}
	}
	var tensors []ggufTensor
	names := map[string]bool{}
	for i := uint64(0); i < nTensors; i++ {
		at := g.w.pos
		name, err := g.str(1024)
		if err != nil {
			return err
		}
		nd, err := g.u32()
		if err != nil {
			return err
		}
		if nd > 4 {
			return g.fail("tensor %q has %d dimensions; GGML allows at most 4", name, nd)
		}
		numel := int64(1)
		overflow := false
		var dims []uint64
		for j := uint32(0); j < nd; j++ {
			d, err := g.count()
			if err != nil {
				return err
			}
			dims = append(dims, d)
			if d > math.MaxInt64 || (d != 0 && numel > math.MaxInt64/int64(d)) {
				overflow = true
			} else {
				numel *= int64(d)
			}
		}
		typ, err := g.u32()
		if err != nil {
			return err
		}
		off, err := g.u64()
		if err != nil {
			return err
		}
		if names[name] {
			fsn.add(src, "gguf", at, SeverityMedium, "scan.gguf.malformed", fmt.Sprintf("tensor %q appears twice", name))
		}
		names[name] = true
		if overflow {
			f := fsn.add(src, "gguf", at, SeverityHigh, "scan.gguf.out-of-bounds", fmt.Sprintf("tensor %q: shape %v overflows 64 bits", name, dims))
			f.ATLAS = append([]string(nil), atlasMalformed...)
			continue
		}
		bt, ok := ggmlTypes[typ]
		if !ok {
			fsn.add(src, "gguf", at, SeverityLow, "scan.gguf.malformed", fmt.Sprintf("tensor %q has ggml type %d, unknown to this scanner: its size was not checked", name, typ))
			tensors = append(tensors, ggufTensor{name: name, off: int64(min(off, math.MaxInt64)), size: 0, at: at})
			continue
		}
		if len(dims) > 0 && int64(dims[0])%bt[0] != 0 {
			fsn.add(src, "gguf", at, SeverityMedium, "scan.gguf.malformed", fmt.Sprintf("tensor %q: first dimension %d is not a multiple of its type's block size %d", name, dims[0], bt[0]))
		}
		blocks := (numel + bt[0] - 1) / bt[0]
		if blocks > math.MaxInt64/bt[1] || off > math.MaxInt64 {
			f := fsn.add(src, "gguf", at, SeverityHigh, "scan.gguf.out-of-bounds", fmt.Sprintf("tensor %q: size or offset overflows", name))
			f.ATLAS = append([]string(nil), atlasMalformed...)
			continue
		}
		tensors = append(tensors, ggufTensor{name: name, off: int64(off), size: blocks * bt[1], at: at})
	}
	dataStart := (g.w.pos + alignment - 1) / alignment * alignment
	dataLen := src.size - dataStart
	if nTensors > 0 && dataLen < 0 {
		return &errGGUF{off: g.w.pos, msg: "the file ends before the tensor data"}
	}
	sort.Slice(tensors, func(i, j int) bool { return tensors[i].off < tensors[j].off })
	var end int64
	var prev string
	bad := 0
	for _, t := range tensors {
		switch {
		case t.off%alignment != 0:
			fsn.add(src, "gguf", t.at, SeverityMedium, "scan.gguf.malformed", fmt.Sprintf("tensor %q: offset %d is not a multiple of the alignment %d", t.name, t.off, alignment))
		case t.off > dataLen || t.size > dataLen-t.off:
			bad++
			if bad <= 20 {
				f := fsn.add(src, "gguf", t.at, SeverityHigh, "scan.gguf.out-of-bounds",
					fmt.Sprintf("tensor %q: data [%d, %d) lies outside the %d-byte data section: loaders that trust it read out of bounds", t.name, t.off, satAdd(t.off, t.size), dataLen))
				f.ATLAS = append([]string(nil), atlasMalformed...)
			}
			continue
		case t.off < end:
			fsn.add(src, "gguf", t.at, SeverityMedium, "scan.gguf.malformed", fmt.Sprintf("tensor %q overlaps tensor %q", t.name, prev))
		}
		if e := t.off + t.size; e > end {
			end, prev = e, t.name
		}
	}
	// llama.cpp reads the data section as the sum of the tensors' sizes,
	// each padded to the alignment: a shorter file fails to load.
	if need := (end + alignment - 1) / alignment * alignment; end > 0 && bad == 0 && need > dataLen {
		fsn.unparseable(src, "gguf (truncated)", src.size, fmt.Sprintf("the tensor data needs %d bytes after offset %d but the file has %d", need, dataStart, dataLen))
	}
	return nil
}
