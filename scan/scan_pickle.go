package scan

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strings"
)

// scanPickle analyses the pickle(s) in src from offset start and turns what
// the VM found into findings. When strong is false the source was only
// guessed to be a pickle: if its first stream does not parse, it is not one
// and nothing is reported.
func (fsn *fileScan) scanPickle(src source, format string, start int64, strong bool) bool {
	res := analyzePickle(fsn.ctx, src.r, start, src.size, fsn.lim, fsn.s.pol)
	if !strong && res.Streams == 0 {
		return false
	}
	if res.LegacyTorch {
		format = "pytorch-legacy"
	}
	for _, ev := range res.Events {
		if ev.Severity == SeveritySafe {
			continue
		}
		f := fsn.add(src, format, ev.Offset, ev.Severity, ev.Rule, eventMessage(ev))
		f.Opcode, f.Module, f.Name, f.Args, f.Count = ev.Opcode, ev.Module, ev.Name, ev.Args, ev.Count
		// Calls judged by the pickle policy carry the code-execution tags.
		f.ATLAS = append([]string(nil), atlasCode...)
	}
	if res.DroppedEvents > 0 {
		fsn.add(src, format, -1, SeverityInfo, "scan.pickle.limit",
			fmt.Sprintf("%d further distinct imports and calls were judged but not listed (limit %d per kind)", res.DroppedEvents, fsn.lim.MaxEvents))
	}
	for _, is := range res.Issues {
		f := fsn.add(src, format, is.Offset, is.Severity, is.Rule, is.Message)
		f.Opcode = is.Opcode
	}
	if e := res.Err; e != nil {
		switch e.Kind {
		case "limit":
			f := fsn.add(src, format, e.Offset, SeverityMedium, "scan.pickle.limit", "analysis stopped, so the rest of the pickle was not checked: "+e.Msg)
			f.Opcode = e.Opcode
		case "io":
			fsn.ioError(src, fmt.Errorf("%s", e.Msg))
		default:
			what := "pickle"
			if e.Kind == "truncated" {
				what = "pickle (truncated)"
			}
			msg := e.Error()
			if len(res.Events) > 0 {
				msg += "; the imports and calls before this point would still run on load"
			}
			fsn.unparseable(src, what, e.Offset, msg)
			fsn.rep.Findings[len(fsn.rep.Findings)-1].Opcode = e.Opcode
		}
	}
	for _, p := range res.Payloads {
		fsn.scanPayload(src, p)
	}
	if res.LegacyTorch && res.Streams == 5 && res.Err == nil {
		fsn.checkLegacyStorages(src, res)
	}
	return true
}

// storageElemSize is the element size of each PyTorch storage class.
var storageElemSize = map[string]int64{
	"FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2,
	"LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
	"BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16, "QInt8Storage": 1,
	"QUInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1,
	"UntypedStorage": 1,
}

// checkLegacyStorages checks the raw storage records that follow the five
// pickles of torch.save's legacy format: for each storage key, in sorted
// order, an 8-byte element count and the elements. A file that ends early
// cannot be loaded; bytes after the last record are never read by
// torch.load and are where a second payload would hide.
func (fsn *fileScan) checkLegacyStorages(src source, res *PickleResult) {
	type rec struct {
		typ   string
		numel int64
	}
	byKey := map[string]rec{}
	for _, s := range res.TorchStorages {
		byKey[s.Key] = rec{s.Type, s.Numel}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pos := res.End
	for _, k := range keys {
		r := byKey[k]
		_, cls := splitPath(r.typ)
		es, ok := storageElemSize[cls]
		if !ok {
			return // a storage type this check does not know: no verdict
		}
		var b [8]byte
		if n, _ := src.r.ReadAt(b[:], pos); n < 8 {
			fsn.unparseable(src, "pytorch-legacy (truncated)", pos, fmt.Sprintf("the file ends before the data of storage %q", k))
			return
		}
		numel := int64(binary.LittleEndian.Uint64(b[:]))
		if numel != r.numel {
			fsn.add(src, "pytorch-legacy", pos, SeverityMedium, "scan.unparseable",
				fmt.Sprintf("storage %q: the data section says %d elements, the pickle says %d", k, numel, r.numel))
			return
		}
		if numel < 0 || numel > (src.size-pos-8)/es {
			fsn.unparseable(src, "pytorch-legacy (truncated)", pos, fmt.Sprintf("storage %q needs %d bytes but the file has %d left", k, numel*es, src.size-pos-8))
			return
		}
		pos += 8 + numel*es
	}
	if pos < src.size {
		fsn.add(src, "pytorch-legacy", pos, SeverityMedium, "scan.trailing-data",
			fmt.Sprintf("%d bytes after the last storage that torch.load never reads: room for a hidden payload", src.size-pos))
		fsn.scanTrailing(src, pos)
	}
}

// eventMessage explains one import or call.
func eventMessage(ev PickleEvent) string {
	if ev.Kind == "state" {
		msg := fmt.Sprintf("%s state sets %s = %s", ev.Opcode, ev.Name, ev.Args)
		if ev.Reason != "" {
			msg += ": " + ev.Reason
		}
		return msg
	}
	what := "imports"
	if ev.Kind == "call" {
		what = "calls"
	}
	callable := ev.Name
	if ev.Module != "" {
		callable = ev.Module + "." + ev.Name
	}
	msg := fmt.Sprintf("%s %s %s", ev.Opcode, what, callable)
	if ev.Kind == "call" && ev.Args != "" {
		msg += ev.Args
	}
	if ev.Reason != "" {
		msg += ": " + ev.Reason
	}
	return msg
}

// scanPayload scans data the pickle hands to a loader as a file of its own.
func (fsn *fileScan) scanPayload(src source, p Payload) {
	name := fmt.Sprintf("%s-at-%d", p.Via, p.Offset)
	if src.depth >= fsn.lim.MaxDepth {
		fsn.add(src, "pickle", p.Offset, SeverityMedium, "scan.archive.limit",
			fmt.Sprintf("payload passed to %s nested past the depth limit of %d: not scanned", p.Via, fsn.lim.MaxDepth))
		return
	}
	var r io.ReaderAt
	off := int64(-1)
	if p.Src >= 0 {
		r, off = io.NewSectionReader(src.r, p.Src, p.Len), p.Src
	} else {
		r = bytes.NewReader(p.Data)
	}
	// The loader decides the format: pickle.loads reads a pickle, torch.load
	// a PyTorch file of either kind.
	child := src.child(name, r, p.Len, off)
	if strings.HasPrefix(p.Via, "torch.") {
		child.name = "payload.pt"
	} else {
		child.name = "payload.pkl"
	}
	if p.Via == "marshal.loads" {
		return // code objects: the call itself is the finding
	}
	fsn.scanSource(child)
}
