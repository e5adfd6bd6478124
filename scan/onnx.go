package scan

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ONNX models are protobufs (onnx.proto: ModelProto, GraphProto, NodeProto,
// TensorProto). Three things in them matter to a scanner:
//
//   - external data: a tensor can keep its bytes in another file named by a
//     "location" relative to the model; a location that is absolute or
//     climbs out with ".." makes the runtime read (and a converter copy)
//     any file the user can read;
//   - custom operator domains: nodes outside the standard domains run
//     whatever native library registered the domain;
//   - tensors whose byte size disagrees with their shape: the mismatch that
//     out-of-bounds reads in runtimes are made of.
//
// The model is walked with the generic wire-format reader, so raw tensor
// bytes are located but never loaded.

// standardDomains are the ONNX operator sets; com.microsoft (ONNX Runtime
// contrib ops) is LOW: native code, but shipped with the runtime.
var standardDomains = set("", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training")

// onnxElemSize is the size in bits of each TensorProto.DataType.
var onnxElemBits = map[uint64]int64{
	1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64,
	14: 64, 15: 128, 16: 16, 17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 24: 8,
}

// onnxScan is the state of one model's walk.
type onnxScan struct {
	fsn       *fileScan
	src       source
	functions map[string]bool // "domain\x00name" of model-local functions
	nodes     []onnxNode      // nodes in non-standard domains
	findings  int
	tensors   int
}

type onnxNode struct {
	domain, op string
	off        int64
}

// maxONNXFindings bounds the findings of one model.
const maxONNXFindings = 1000

func (fsn *fileScan) scanONNX(src source) {
	o := &onnxScan{fsn: fsn, src: src, functions: map[string]bool{}}
	err := pbWalk(src.r, 0, src.size, func(f pbField) error {
		switch {
		case f.num == 7 && f.typ == wireLen:
			return o.graph(f, 0)
		case f.num == 25 && f.typ == wireLen:
			return o.function(f)
		case f.num == 20 && f.typ == wireLen: // training_info
			return pbWalk(src.r, f.off, f.off+f.n, func(g pbField) error {
				if (g.num == 1 || g.num == 2) && g.typ == wireLen {
					return o.graph(g, 1)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		fsn.unparseable(src, "onnx", -1, err.Error())
	}
	o.reportDomains()
}

func (o *onnxScan) add(off int64, sev Severity, rule, msg string) *Finding {
	o.findings++
	if o.findings > maxONNXFindings {
		return &Finding{}
	}
	return o.fsn.add(o.src, "onnx", off, sev, rule, msg)
}

func (o *onnxScan) graph(f pbField, depth int) error {
	if depth > 32 {
		return errors.New("subgraphs nested more than 32 deep")
	}
	return pbWalk(o.src.r, f.off, f.off+f.n, func(g pbField) error {
		if g.typ != wireLen {
			return nil
		}
		switch g.num {
		case 1:
			return o.node(g, depth)
		case 5:
			return o.tensor(g)
		case 15: // sparse_initializer: values(1) and indices(2) are tensors
			return pbWalk(o.src.r, g.off, g.off+g.n, func(h pbField) error {
				if (h.num == 1 || h.num == 2) && h.typ == wireLen {
					return o.tensor(h)
				}
				return nil
			})
		}
		return nil
	})
}

func (o *onnxScan) function(f pbField) error {
	var name, domain string
	err := pbWalk(o.src.r, f.off, f.off+f.n, func(g pbField) error {
		switch {
		case g.num == 1 && g.typ == wireLen:
			name = pbString(o.src.r, g, 1024)
		case g.num == 10 && g.typ == wireLen:
			domain = pbString(o.src.r, g, 1024)
		case g.num == 7 && g.typ == wireLen:
			return o.node(g, 1)
		}
		return nil
	})
	o.functions[domain+"\x00"+name] = true
	return err
}

func (o *onnxScan) node(f pbField, depth int) error {
	var op, domain string
	err := pbWalk(o.src.r, f.off, f.off+f.n, func(g pbField) error {
		switch {
		case g.num == 4 && g.typ == wireLen:
			op = pbString(o.src.r, g, 1024)
		case g.num == 7 && g.typ == wireLen:
			domain = pbString(o.src.r, g, 1024)
		case g.num == 5 && g.typ == wireLen:
			return o.attribute(g, depth)
		}
		return nil
	})
	if !standardDomains[domain] && len(o.nodes) < 100_000 {
		o.nodes = append(o.nodes, onnxNode{domain: domain, op: op, off: f.from})
	}
	return err
}

// attribute descends into tensors and subgraphs held by node attributes.
func (o *onnxScan) attribute(f pbField, depth int) error {
	return pbWalk(o.src.r, f.off, f.off+f.n, func(g pbField) error {
		if g.typ != wireLen {
			return nil
		}
		switch g.num {
		case 5, 10: // t, tensors
			return o.tensor(g)
		case 6, 11: // g, graphs
			return o.graph(g, depth+1)
		case 22, 23: // sparse_tensor(s)
			return pbWalk(o.src.r, g.off, g.off+g.n, func(h pbField) error {
				if (h.num == 1 || h.num == 2) && h.typ == wireLen {
					return o.tensor(h)
				}
				return nil
			})
		}
		return nil
	})
}

// tensorInfo is what a TensorProto says about its size.
type tensorInfo struct {
	name     string
	dims     []int64
	dtype    uint64
	raw      int64 // raw_data length, -1 when absent
	external map[string]string
	location uint64
	// counts of elements in the typed fields
	floats, doubles, int32s, int64s, uint64s int64
}

func (o *onnxScan) tensor(f pbField) error {
	o.tensors++
	t := tensorInfo{raw: -1}
	err := pbWalk(o.src.r, f.off, f.off+f.n, func(g pbField) error {
		switch g.num {
		case 1: // dims, packed or not
			if g.typ == wireVarint {
				t.dims = append(t.dims, int64(g.val))
			} else if g.typ == wireLen {
				if g.n > 64*10 {
					return fmt.Errorf("tensor dims field of %d bytes", g.n)
				}
				w := newWindowReader(o.src.r, g.off, g.off+g.n)
				for w.remaining() > 0 {
					v, err := readVarint(w)
					if err != nil {
						return err
					}
					t.dims = append(t.dims, int64(v))
				}
			}
		case 2:
			t.dtype = g.val
		case 8:
			if g.typ == wireLen {
				t.name = pbString(o.src.r, g, 256)
			}
		case 9:
			if g.typ == wireLen {
				t.raw = g.n
			}
		case 13:
			if g.typ == wireLen {
				var k, v string
				if err := pbWalk(o.src.r, g.off, g.off+g.n, func(h pbField) error {
					if h.typ == wireLen && h.num == 1 {
						k = pbString(o.src.r, h, 4096)
					} else if h.typ == wireLen && h.num == 2 {
						v = pbString(o.src.r, h, 4096)
					}
					return nil
				}); err != nil {
					return err
				}
				if t.external == nil {
					t.external = map[string]string{}
				}
				t.external[k] = v
			}
		case 14:
			t.location = g.val
		case 4:
			t.floats += fixedCount(g, 4)
		case 10:
			t.doubles += fixedCount(g, 8)
		case 5:
			c, err := o.varintCount(g)
			if err != nil {
				return err
			}
			t.int32s += c
		case 7:
			c, err := o.varintCount(g)
			if err != nil {
				return err
			}
			t.int64s += c
		case 11:
			c, err := o.varintCount(g)
			if err != nil {
				return err
			}
			t.uint64s += c
		}
		return nil
	})
	if err != nil {
		return err
	}
	o.checkTensor(f.from, &t)
	return nil
}

// fixedCount counts the elements of a packed or single fixed-size field.
func fixedCount(g pbField, size int64) int64 {
	if g.typ == wireLen {
		return g.n / size
	}
	return 1
}

// varintCount counts the elements of a packed or single varint field: the
// bytes without the continuation bit.
func (o *onnxScan) varintCount(g pbField) (int64, error) {
	if g.typ != wireLen {
		return 1, nil
	}
	w := newWindowReader(o.src.r, g.off, g.off+g.n)
	var c int64
	for w.remaining() > 0 {
		k, err := w.avail()
		if err != nil {
			return 0, err
		}
		chunk := w.win[w.pos-w.winOff : w.pos-w.winOff+int64(min(int64(k), w.remaining()))]
		for _, b := range chunk {
			if b < 0x80 {
				c++
			}
		}
		w.pos += int64(len(chunk))
	}
	return c, nil
}

func (o *onnxScan) checkTensor(off int64, t *tensorInfo) {
	name := t.name
	numel := int64(1)
	for _, d := range t.dims {
		if d < 0 {
			o.add(off, SeverityMedium, "scan.onnx.tensor-size", fmt.Sprintf("tensor %q has a negative dimension %d", name, d))
			return
		}
		if d != 0 && numel > math.MaxInt64/d {
			o.add(off, SeverityMedium, "scan.onnx.tensor-size", fmt.Sprintf("tensor %q: its shape %v overflows", name, t.dims))
			return
		}
		numel *= d
	}
	bits, known := onnxElemBits[t.dtype]
	var want int64 = -1
	if known && numel <= math.MaxInt64/bits {
		want = (numel*bits + 7) / 8
	}
	if t.location == 1 || t.external != nil {
		o.checkExternal(off, t, want)
		return
	}
	if t.raw >= 0 {
		if want >= 0 && t.raw != want {
			o.add(off, SeverityMedium, "scan.onnx.tensor-size",
				fmt.Sprintf("tensor %q: raw_data holds %d bytes but its type and shape %v need %d", name, t.raw, t.dims, want))
		}
		return
	}
	// Typed fields: only the unambiguous pairs are checked.
	check := func(field string, have, need int64) {
		if have > 0 && have != need {
			o.add(off, SeverityMedium, "scan.onnx.tensor-size",
				fmt.Sprintf("tensor %q: %s holds %d values but its shape %v needs %d", name, field, have, t.dims, need))
		}
	}
	switch t.dtype {
	case 1:
		check("float_data", t.floats, numel)
	case 14:
		check("float_data", t.floats, 2*numel)
	case 11:
		check("double_data", t.doubles, numel)
	case 15:
		check("double_data", t.doubles, 2*numel)
	case 7:
		check("int64_data", t.int64s, numel)
	case 6, 5, 3, 2, 4, 9, 10, 16:
		check("int32_data", t.int32s, numel)
	case 12, 13:
		check("uint64_data", t.uint64s, numel)
	}
}

// checkExternal checks where an external tensor's data lives.
func (o *onnxScan) checkExternal(off int64, t *tensorInfo, want int64) {
	loc, ok := t.external["location"]
	if !ok || loc == "" {
		o.add(off, SeverityMedium, "scan.onnx.tensor-size", fmt.Sprintf("tensor %q is stored externally but names no location", t.name))
		return
	}
	slashed := strings.ReplaceAll(loc, "\\", "/")
	escapes := strings.HasPrefix(slashed, "/") || (len(slashed) >= 2 && slashed[1] == ':') || strings.HasPrefix(slashed, "//")
	for _, part := range strings.Split(slashed, "/") {
		if part == ".." {
			escapes = true
		}
	}
	if escapes {
		f := o.add(off, SeverityHigh, "scan.onnx.external-data",
			fmt.Sprintf("tensor %q takes its data from %q, outside the model folder: loading or converting the model reads (and may copy out) that file", t.name, loc))
		f.Args = loc
		f.ATLAS = append([]string(nil), atlasCode...)
		return
	}
	var extOff, extLen int64 = 0, -1
	if s, ok := t.external["offset"]; ok {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			o.add(off, SeverityMedium, "scan.onnx.tensor-size", fmt.Sprintf("tensor %q: external data offset %q is not a non-negative integer", t.name, s))
			return
		}
		extOff = v
	}
	if s, ok := t.external["length"]; ok {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			o.add(off, SeverityMedium, "scan.onnx.tensor-size", fmt.Sprintf("tensor %q: external data length %q is not a non-negative integer", t.name, s))
			return
		}
		extLen = v
		if want >= 0 && extLen != want {
			o.add(off, SeverityMedium, "scan.onnx.tensor-size",
				fmt.Sprintf("tensor %q: external data length %d but its type and shape %v need %d", t.name, extLen, t.dims, want))
		}
	}
	if o.src.diskPath == "" {
		return // inside an archive: nothing on disk to check against
	}
	dir := filepath.Dir(o.src.diskPath)
	p := filepath.Join(dir, filepath.FromSlash(slashed))
	st, err := os.Lstat(p)
	if err != nil {
		o.add(off, SeverityLow, "scan.onnx.external-data-missing",
			fmt.Sprintf("tensor %q: external data file %q not found next to the model: %v", t.name, loc, errors.Unwrap(err)))
		return
	}
	if st.Mode()&os.ModeSymlink != 0 {
		real, err1 := filepath.EvalSymlinks(p)
		realDir, err2 := filepath.EvalSymlinks(dir)
		if err1 == nil && err2 == nil {
			real, _ = filepath.Abs(real)
			realDir, _ = filepath.Abs(realDir)
			if !strings.HasPrefix(real, realDir+string(filepath.Separator)) {
				f := o.add(off, SeverityHigh, "scan.onnx.external-data",
					fmt.Sprintf("tensor %q takes its data from %q, a symbolic link to %s outside the model folder", t.name, loc, real))
				f.Args = loc
				f.ATLAS = append([]string(nil), atlasCode...)
				return
			}
		}
		if st2, err := os.Stat(p); err == nil {
			st = st2
		}
	}
	need := want
	if extLen >= 0 {
		need = extLen
	}
	if need >= 0 && st.Mode().IsRegular() && extOff > st.Size()-need {
		o.add(off, SeverityMedium, "scan.onnx.tensor-size",
			fmt.Sprintf("tensor %q: external data [%d, +%d) runs past the end of %q (%d bytes)", t.name, extOff, need, loc, st.Size()))
	}
}

// reportDomains reports the nodes in non-standard domains that no
// model-local function defines, grouped by domain and op.
func (o *onnxScan) reportDomains() {
	type group struct {
		off   int64
		count int
	}
	groups := map[string]*group{}
	var keys []string
	for _, n := range o.nodes {
		if o.functions[n.domain+"\x00"+n.op] {
			continue
		}
		k := n.domain + "\x00" + n.op
		if g := groups[k]; g != nil {
			g.count++
			continue
		}
		groups[k] = &group{off: n.off, count: 1}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		domain, op, _ := strings.Cut(k, "\x00")
		g := groups[k]
		sev, why := SeverityMedium, "a custom operator domain: the runtime runs whatever native library registered it"
		if domain == "com.microsoft" || strings.HasPrefix(domain, "com.microsoft.") {
			sev, why = SeverityLow, "ONNX Runtime contrib operators: native code shipped with the runtime"
		}
		f := o.add(g.off, sev, "scan.onnx.custom-domain", fmt.Sprintf("%d node(s) %s in domain %q: %s", g.count, op, domain, why))
		f.Module, f.Name, f.Opcode, f.Count = domain, op, op, g.count
	}
}
