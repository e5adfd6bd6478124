package scan

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"testing"
)

// pk assembles pickles opcode by opcode for the tests.
type pk struct{ b []byte }

func newPK(proto int) *pk {
	p := &pk{}
	if proto >= 2 {
		p.b = append(p.b, opPROTO, byte(proto))
	}
	return p
}

func (p *pk) op(ops ...byte) *pk { p.b = append(p.b, ops...); return p }

func (p *pk) raw(s string) *pk { p.b = append(p.b, s...); return p }

// str pushes a str (SHORT_BINUNICODE).
func (p *pk) str(s string) *pk {
	p.b = append(p.b, opSHORT_BINUNICODE, byte(len(s)))
	p.b = append(p.b, s...)
	return p
}

func (p *pk) u32(op byte, v uint32) *pk {
	p.b = append(p.b, op)
	p.b = binary.LittleEndian.AppendUint32(p.b, v)
	return p
}

func (p *pk) u64(op byte, v uint64) *pk {
	p.b = append(p.b, op)
	p.b = binary.LittleEndian.AppendUint64(p.b, v)
	return p
}

func (p *pk) global(mod, name string) *pk { return p.raw("c" + mod + "\n" + name + "\n") }

func (p *pk) stackGlobal(mod, name string) *pk { return p.str(mod).str(name).op(opSTACK_GLOBAL) }

func (p *pk) bytes() []byte { return p.b }

func analyze(t *testing.T, b []byte) *PickleResult {
	t.Helper()
	return AnalyzePickle(context.Background(), bytes.NewReader(b), int64(len(b)), PickleOptions{})
}

func analyzeLim(t *testing.T, b []byte, lim Limits) *PickleResult {
	t.Helper()
	return AnalyzePickle(context.Background(), bytes.NewReader(b), int64(len(b)), PickleOptions{Limits: lim})
}

// findEvent returns the first event of kind for module.name.
func findEvent(res *PickleResult, kind, callable string) *PickleEvent {
	for i := range res.Events {
		e := &res.Events[i]
		if e.Kind == kind && e.Module+"."+e.Name == callable {
			return e
		}
	}
	return nil
}

func maxSeverity(res *PickleResult) Severity {
	var s Severity
	for _, e := range res.Events {
		s = max(s, e.Severity)
	}
	for _, i := range res.Issues {
		s = max(s, i.Severity)
	}
	return s
}

func mustComplete(t *testing.T, res *PickleResult) {
	t.Helper()
	if res.Err != nil {
		t.Fatalf("pickle did not run to STOP: %v", res.Err)
	}
}

func TestVMReduceResolvesThroughMemoAndGetattr(t *testing.T) {
	cases := []struct {
		name   string
		pickle []byte
		call   string // the call that must be resolved
		args   string
		sev    Severity
	}{
		{
			name:   "GLOBAL+REDUCE protocol 0",
			pickle: []byte("cos\nsystem\n(S'echo hi'\ntR."),
			call:   "os.system", args: `("echo hi")`, sev: SeverityCritical,
		},
		{
			name:   "posix alias, BINUNICODE, TUPLE1",
			pickle: newPK(2).global("posix", "system").u32(opBINUNICODE, 2).raw("id").op(opTUPLE1, opREDUCE, opSTOP).bytes(),
			call:   "os.system", args: `("id")`, sev: SeverityCritical,
		},
		{
			name: "STACK_GLOBAL from memo, LONG_BINPUT/LONG_BINGET and PUT/GET",
			pickle: newPK(4).str("os").u32(opLONG_BINPUT, 7).op(opPOP).
				str("system").raw("p99\n").op(opPOP).
				u32(opLONG_BINGET, 7).raw("g99\n").op(opSTACK_GLOBAL).
				str("x").op(opTUPLE1, opREDUCE, opSTOP).bytes(),
			call: "os.system", args: `("x")`, sev: SeverityCritical,
		},
		{
			name: "getattr(__import__('os'), 'system')",
			pickle: newPK(4).stackGlobal("builtins", "getattr").
				stackGlobal("builtins", "__import__").str("os").op(opTUPLE1, opREDUCE).
				str("system").op(opTUPLE2, opREDUCE).str("x").op(opTUPLE1, opREDUCE, opSTOP).bytes(),
			call: "os.system", args: `("x")`, sev: SeverityCritical,
		},
		{
			name: "nested getattr chain os.path.join",
			pickle: newPK(4).stackGlobal("builtins", "getattr").op(opMEMOIZE).
				op(opBINGET, 0).stackGlobal("importlib", "import_module").str("os").op(opTUPLE1, opREDUCE).
				str("path").op(opTUPLE2, opREDUCE).
				str("join").op(opTUPLE2, opREDUCE).str("a").op(opTUPLE1, opREDUCE, opSTOP).bytes(),
			call: "os.path.join", args: `("a")`, sev: SeverityCritical,
		},
		{
			name: "sys.modules['subprocess'] via operator.getitem",
			pickle: newPK(4).stackGlobal("builtins", "getattr").
				stackGlobal("operator", "getitem").stackGlobal("sys", "modules").str("subprocess").op(opTUPLE2, opREDUCE).
				str("getoutput").op(opTUPLE2, opREDUCE).str("x").op(opTUPLE1, opREDUCE, opSTOP).bytes(),
			call: "subprocess.getoutput", args: `("x")`, sev: SeverityCritical,
		},
		{
			name: "operator.attrgetter",
			pickle: newPK(4).stackGlobal("operator", "attrgetter").str("system").op(opTUPLE1, opREDUCE).
				stackGlobal("builtins", "__import__").str("os").op(opTUPLE1, opREDUCE).op(opTUPLE1, opREDUCE).
				str("x").op(opTUPLE1, opREDUCE, opSTOP).bytes(),
			call: "os.system", args: `("x")`, sev: SeverityCritical,
		},
		{
			name: "operator.methodcaller",
			pickle: newPK(4).stackGlobal("operator", "methodcaller").str("system").str("x").op(opTUPLE2, opREDUCE).
				stackGlobal("importlib", "import_module").str("os").op(opTUPLE1, opREDUCE).op(opTUPLE1, opREDUCE, opSTOP).bytes(),
			call: "os.system", args: `("x")`, sev: SeverityCritical,
		},
		{
			name: "functools.partial",
			pickle: newPK(2).global("functools", "partial").global("os", "system").str("x").op(opTUPLE2, opREDUCE).
				op(opEMPTY_TUPLE, opREDUCE, opSTOP).bytes(),
			call: "os.system", args: `("x")`, sev: SeverityCritical,
		},
		{
			name:   "INST",
			pickle: []byte("(S'x'\nios\nsystem\n."),
			call:   "os.system", args: `("x")`, sev: SeverityCritical,
		},
		{
			name:   "OBJ",
			pickle: newPK(0).op(opMARK).global("subprocess", "Popen").str("x").op(opOBJ, opSTOP).bytes(),
			call:   "subprocess.Popen", args: `("x")`, sev: SeverityCritical,
		},
		{
			name:   "NEWOBJ",
			pickle: newPK(2).global("subprocess", "Popen").str("x").op(opTUPLE1, opNEWOBJ, opSTOP).bytes(),
			call:   "subprocess.Popen", args: `("x")`, sev: SeverityCritical,
		},
		{
			name: "NEWOBJ_EX with kwargs",
			pickle: newPK(4).stackGlobal("subprocess", "Popen").str("x").op(opTUPLE1).
				op(opEMPTY_DICT).str("shell").op(opNEWTRUE, opSETITEM, opNEWOBJ_EX, opSTOP).bytes(),
			call: "subprocess.Popen", args: `("x", shell=True)`, sev: SeverityCritical,
		},
		{
			name: "persistent ID of a torch legacy module",
			pickle: newPK(2).op(opMARK).str("module").global("os", "system").str("f.py").str("src").op(opTUPLE, opBINPERSID).
				str("x").op(opTUPLE1, opREDUCE, opSTOP).bytes(),
			call: "os.system", args: `("x")`, sev: SeverityCritical,
		},
		{
			name:   "Python 2 builtin name",
			pickle: []byte("c__builtin__\nexecfile\n(S'x.py'\ntR."),
			call:   "builtins.exec", args: `("x.py")`, sev: SeverityCritical,
		},
		{
			name:   "dunder reach through another module",
			pickle: newPK(4).stackGlobal("numpy", "__builtins__.eval").str("1").op(opTUPLE1, opREDUCE, opSTOP).bytes(),
			call:   "numpy.__builtins__.eval", args: `("1")`, sev: SeverityCritical,
		},
		{
			name:   "unknown global is MEDIUM",
			pickle: newPK(2).global("mypkg.models", "Net").op(opEMPTY_TUPLE, opREDUCE, opSTOP).bytes(),
			call:   "mypkg.models.Net", args: `()`, sev: SeverityMedium,
		},
		{
			name:   "sklearn class is LOW",
			pickle: newPK(2).global("sklearn.linear_model._logistic", "LogisticRegression").op(opEMPTY_TUPLE, opNEWOBJ, opSTOP).bytes(),
			call:   "sklearn.linear_model._logistic.LogisticRegression", args: `()`, sev: SeverityLow,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := analyze(t, c.pickle)
			mustComplete(t, res)
			ev := findEvent(res, "call", c.call)
			if ev == nil {
				t.Fatalf("no call of %s in %+v", c.call, res.Events)
			}
			if ev.Args != c.args || ev.Severity != c.sev {
				t.Errorf("call %s%s at %s, want args %s at %s", c.call, ev.Args, ev.Severity, c.args, c.sev)
			}
			if got := maxSeverity(res); got < c.sev {
				t.Errorf("max severity %s < %s", got, c.sev)
			}
		})
	}
}

func TestVMSafePicklesStaySafe(t *testing.T) {
	// Every constant, container and memo opcode, on allowlisted globals only.
	p := newPK(5).u64(opFRAME, 0) // frame length is not checked against ops
	p.b = p.b[:len(p.b)-8]
	p.b = binary.LittleEndian.AppendUint64(p.b, 10)
	p.op(opEMPTY_DICT, opMEMOIZE, opMARK)
	p.str("none").op(opNONE)
	p.str("bools").op(opNEWTRUE, opNEWFALSE, opTUPLE2)
	p.str("ints").op(opMARK, opBININT1, 5, opBININT2, 1, 2).u32(opBININT, 0xffffffff).raw("I42\nI01\nL123L\n").op(opLONG1, 2, 0xff, 0x7f).u32(opLONG4, 1).op(0x80).op(opTUPLE)
	p.str("floats").raw("F1.5\n").op(opBINFLOAT, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0).op(opTUPLE2)
	p.str("strs").op(opMARK).raw("S'a\\'b'\nVcaf\\u00e9\n").op(opSHORT_BINSTRING, 1, 'x').u32(opBINSTRING, 1).raw("y").u64(opBINUNICODE8, 1).raw("z").op(opTUPLE)
	p.str("bytes").op(opMARK, opSHORT_BINBYTES, 1, 'a').u32(opBINBYTES, 1).raw("b").u64(opBINBYTES8, 1).raw("c").u64(opBYTEARRAY8, 1).raw("d").op(opTUPLE)
	p.str("list").op(opEMPTY_LIST, opBINPUT, 1, opBININT1, 1, opAPPEND, opMARK, opBININT1, 2, opBININT1, 3, opAPPENDS)
	p.str("list0").op(opMARK, opBININT1, 1, opLIST)
	p.str("dict0").op(opMARK).str("k").op(opBININT1, 1, opDICT)
	p.str("set").op(opEMPTY_SET, opMARK, opBININT1, 1, opADDITEMS)
	p.str("frozenset").op(opMARK, opBININT1, 1, opFROZENSET)
	p.str("tuple0").op(opMARK, opNONE, opTUPLE, opEMPTY_TUPLE, opTUPLE2)
	p.str("again").op(opBINGET, 1)
	p.str("dup").op(opBININT1, 9, opDUP, opTUPLE2)
	p.str("popped").op(opBININT1, 9, opBININT1, 8, opPOP)
	p.str("popmark").op(opBININT1, 9, opMARK, opBININT1, 8, opPOP_MARK)
	p.str("od").global("collections", "OrderedDict").op(opEMPTY_TUPLE, opREDUCE, opNONE, opBUILD)
	p.str("complex").stackGlobal("builtins", "complex").op(opBININT1, 1, opBININT1, 2, opTUPLE2, opREDUCE)
	p.str("np").stackGlobal("numpy.core.multiarray", "_reconstruct").stackGlobal("numpy", "ndarray").op(opBININT1, 0, opTUPLE1).op(opSHORT_BINBYTES, 1, 'b', opTUPLE3, opREDUCE)
	p.op(opMARK, opBININT1, 1, opBININT1, 3).stackGlobal("numpy", "dtype").str("f4").op(opNEWFALSE, opNEWTRUE, opTUPLE3, opREDUCE).op(opNEWFALSE, opSHORT_BINBYTES, 0, opTUPLE, opBUILD)
	p.str("buf").op(opNEXT_BUFFER, opREADONLY_BUFFER)
	p.str("torch").global("torch._utils", "_rebuild_tensor_v2")
	p.op(opMARK, opMARK).str("storage").global("torch", "FloatStorage").str("0").str("cpu").op(opBININT1, 4, opTUPLE, opBINPERSID)
	p.op(opBININT1, 0, opBININT1, 4, opTUPLE1, opBININT1, 1, opTUPLE1, opNEWFALSE).global("collections", "OrderedDict").op(opEMPTY_TUPLE, opREDUCE, opTUPLE, opREDUCE)
	p.op(opSETITEMS, opSTOP)
	res := analyze(t, p.bytes())
	mustComplete(t, res)
	for _, e := range res.Events {
		if e.Severity > SeveritySafe {
			t.Errorf("unexpected %s event: %+v", e.Severity, e)
		}
	}
	for _, i := range res.Issues {
		if i.Severity > SeverityInfo {
			t.Errorf("unexpected issue %+v", i)
		}
	}
	if findEvent(res, "call", "torch._utils._rebuild_tensor_v2") == nil || findEvent(res, "import", "torch.FloatStorage") == nil {
		t.Errorf("safe imports and calls are not recorded: %+v", res.Events)
	}
}

func TestVMBuildExtAndDynamic(t *testing.T) {
	res := analyze(t, newPK(2).global("torch", "nn").op(opEMPTY_DICT).str("x").op(opNONE, opSETITEM, opBUILD, opSTOP).bytes())
	mustComplete(t, res)
	if e := findEvent(res, "call", "torch.nn.__setstate__"); e == nil || e.Rule != "scan.pickle.build.global" || e.Severity != SeverityHigh {
		t.Errorf("BUILD on a module: %+v", res.Events)
	}
	res = analyze(t, newPK(2).global("mypkg", "Thing").op(opEMPTY_TUPLE, opREDUCE, opEMPTY_DICT).str("a").op(opBININT1, 1, opSETITEM, opBUILD, opSTOP).bytes())
	if e := findEvent(res, "call", "mypkg.Thing.__setstate__"); e == nil || e.Severity != SeverityMedium || e.Args != `{"a": 1}` {
		t.Errorf("BUILD with __setstate__ semantics: %+v", res.Events)
	}
	for _, ext := range [][]byte{{opEXT1, 5}, {opEXT2, 5, 0}, {opEXT4, 5, 0, 0, 0}} {
		res = analyze(t, append(append(newPK(2).bytes(), ext...), opEMPTY_TUPLE, opREDUCE, opSTOP))
		mustComplete(t, res)
		e := findEvent(res, "import", "copyreg.extension code 5")
		if e == nil || e.Rule != "scan.pickle.extension" {
			t.Errorf("%s: %+v", opName(ext[0]), res.Events)
		}
		if c := findEvent(res, "call", ".<dynamic global>"); c == nil || c.Severity != SeverityHigh {
			t.Errorf("%s call: %+v", opName(ext[0]), res.Events)
		}
	}
	res = analyze(t, newPK(4).stackGlobal("builtins", "str").str("os").op(opTUPLE1, opREDUCE).str("system").op(opSTACK_GLOBAL, opSTOP).bytes())
	found := false
	for _, e := range res.Events {
		found = found || (e.Rule == "scan.pickle.global.dynamic" && e.Severity == SeverityCritical)
	}
	if !found {
		t.Errorf("dynamic STACK_GLOBAL not reported: %+v", res.Events)
	}
}

func TestVMNestedPayloadAndStreams(t *testing.T) {
	inner := newPK(2).global("os", "system").str("x").op(opTUPLE1, opREDUCE, opSTOP).bytes()
	p := newPK(4).stackGlobal("pickle", "loads").u32(opBINBYTES, uint32(len(inner))).raw(string(inner)).op(opTUPLE1, opREDUCE, opSTOP)
	outer := p.bytes()
	res := analyze(t, outer)
	mustComplete(t, res)
	if len(res.Payloads) != 1 {
		t.Fatalf("payloads: %+v", res.Payloads)
	}
	pl := res.Payloads[0]
	if pl.Via != "pickle.loads" || !bytes.Equal(outer[pl.Src:pl.Src+pl.Len], inner) {
		t.Errorf("payload %+v does not locate the inner pickle", pl)
	}

	// Protocol 2 bytes are _codecs.encode(str, "latin1"): still found.
	asText := []rune{}
	for _, c := range inner {
		asText = append(asText, rune(c))
	}
	p2 := newPK(2).global("pickle", "loads").global("_codecs", "encode").str(string(asText)).str("latin1").op(opTUPLE2, opREDUCE, opTUPLE1, opREDUCE, opSTOP)
	res = analyze(t, p2.bytes())
	if len(res.Payloads) != 1 || !bytes.Equal(res.Payloads[0].Data, inner) {
		t.Errorf("latin1 payload: %+v", res.Payloads)
	}

	// Three streams, the last malicious; then trailing garbage.
	multi := append(append(append(newPK(2).op(opNONE, opSTOP).bytes(), newPK(4).op(opNONE, opSTOP).bytes()...), inner...), "\x00\x01garbage"...)
	res = analyze(t, multi)
	mustComplete(t, res)
	if res.Streams != 3 || findEvent(res, "call", "os.system") == nil {
		t.Errorf("streams %d, events %+v", res.Streams, res.Events)
	}
	if len(res.Issues) != 1 || res.Issues[0].Rule != "scan.pickle.trailing-data" {
		t.Errorf("trailing data: %+v", res.Issues)
	}
	// A broken second pickle is reported, not ignored.
	res = analyze(t, append(newPK(2).op(opNONE, opSTOP).bytes(), newPK(2).op(opNONE).bytes()...))
	if len(res.Issues) != 1 || res.Issues[0].Rule != "scan.unparseable" {
		t.Errorf("broken second stream: %+v", res.Issues)
	}
}

func TestVMRejectsWhatPythonRejects(t *testing.T) {
	cases := map[string]struct {
		b    []byte
		kind string
	}{
		"empty":                  {nil, "truncated"},
		"no STOP":                {newPK(2).op(opNONE).bytes(), "truncated"},
		"unknown opcode":         {[]byte{opPROTO, 2, 0xff}, "invalid"},
		"protocol 6":             {[]byte{opPROTO, 6, opNONE, opSTOP}, "invalid"},
		"underflow":              {newPK(2).op(opTUPLE1, opSTOP).bytes(), "invalid"},
		"underflow below mark":   {newPK(2).op(opNONE, opMARK, opPOP, opPOP, opSTOP).bytes(), "invalid"},
		"no mark":                {newPK(2).op(opNONE, opTUPLE, opSTOP).bytes(), "invalid"},
		"odd dict":               {newPK(2).op(opMARK, opNONE, opDICT, opSTOP).bytes(), "invalid"},
		"memo miss":              {newPK(2).op(opBINGET, 3, opSTOP).bytes(), "invalid"},
		"BINUNICODE too long":    {newPK(2).u32(opBINUNICODE, 1<<31).raw("abc").bytes(), "truncated"},
		"BINBYTES8 huge":         {newPK(4).u64(opBINBYTES8, 1<<63).bytes(), "truncated"},
		"FRAME too long":         {newPK(4).u64(opFRAME, 100).op(opNONE, opSTOP).bytes(), "truncated"},
		"LONG4 negative":         {newPK(2).u32(opLONG4, 0xffffffff).bytes(), "invalid"},
		"GLOBAL without newline": {[]byte("cos\nsys"), "truncated"},
		"bad INT":                {[]byte("Ixyz\n."), "invalid"},
		"OBJ without class":      {newPK(1).op(opMARK, opOBJ, opSTOP).bytes(), "invalid"},
	}
	for name, c := range cases {
		res := analyze(t, c.b)
		if res.Err == nil || res.Err.Kind != c.kind {
			t.Errorf("%s: err %v, want kind %s", name, res.Err, c.kind)
		}
	}
	// POP takes a mark that is on top, as in CPython.
	res := analyze(t, newPK(2).op(opNONE, opMARK, opPOP, opSTOP).bytes())
	mustComplete(t, res)
}

func TestVMLimits(t *testing.T) {
	// Memo index that makes CPython allocate a huge table.
	res := analyze(t, newPK(2).op(opNONE).u32(opLONG_BINPUT, 0xfffffff0).op(opSTOP).bytes())
	mustComplete(t, res)
	if len(res.Issues) != 1 || res.Issues[0].Rule != "scan.pickle.limit" {
		t.Errorf("memo index: %+v", res.Issues)
	}
	// Expansion: 40 levels of [x, x].
	p := newPK(2).op(opEMPTY_LIST, opBINPUT, 0)
	for i := 0; i < 40; i++ {
		p.op(opMARK, opBINGET, byte(i), opBINGET, byte(i), opLIST, opBINPUT, byte(i+1), opPOP)
	}
	res = analyze(t, p.op(opBINGET, 40, opSTOP).bytes())
	mustComplete(t, res)
	if len(res.Issues) != 1 || res.Issues[0].Rule != "scan.pickle.expansion" {
		t.Errorf("expansion: %+v", res.Issues)
	}
	// Nesting.
	deep := newPK(2)
	for i := 0; i < 1100; i++ {
		deep.op(opMARK)
	}
	res = analyze(t, deep.op(opNONE, opSTOP).bytes())
	if len(res.Issues) != 1 || !strings.Contains(res.Issues[0].Message, "MARK") {
		t.Errorf("nesting: %+v", res.Issues)
	}
	// Ops, stack and memo limits stop the analysis with a limit error.
	lim := Limits{MaxOps: 100, MaxStack: 50, MaxMemo: 10}
	long := newPK(2)
	for i := 0; i < 200; i++ {
		long.op(opNONE, opPOP)
	}
	if res = analyzeLim(t, long.op(opNONE, opSTOP).bytes(), lim); res.Err == nil || res.Err.Kind != "limit" {
		t.Errorf("ops limit: %v", res.Err)
	}
	wide := newPK(2)
	for i := 0; i < 60; i++ {
		wide.op(opNONE)
	}
	if res = analyzeLim(t, wide.op(opSTOP).bytes(), lim); res.Err == nil || res.Err.Kind != "limit" {
		t.Errorf("stack limit: %v", res.Err)
	}
	memo := newPK(2).op(opNONE)
	for i := 0; i < 20; i++ {
		memo.op(opBINPUT, byte(i))
	}
	if res = analyzeLim(t, memo.op(opSTOP).bytes(), lim); res.Err == nil || res.Err.Kind != "limit" {
		t.Errorf("memo limit: %v", res.Err)
	}
	// A huge allocation through an allowlisted constructor.
	res = analyze(t, newPK(2).global("builtins", "bytearray").op(opLONG1, 5, 0, 0, 0, 0, 1, opTUPLE1, opREDUCE, opSTOP).bytes())
	if len(res.Issues) != 1 || res.Issues[0].Rule != "scan.pickle.expansion" {
		t.Errorf("bytearray bomb: %+v", res.Issues)
	}
}

func TestVMEventsAreBoundedAndDangerousOnesKept(t *testing.T) {
	// Many distinct safe calls, then a dangerous one: the dangerous one
	// must not be pushed out by the flood.
	p := newPK(2)
	for i := 0; i < 300; i++ {
		p.global("builtins", "set").op(opBININT1, byte(i), opTUPLE1, opREDUCE, opPOP)
		p.global("mypkg", "f"+string(rune('a'+i%26))+string(rune('a'+i/26))).op(opPOP)
	}
	p.global("os", "system").op(opEMPTY_TUPLE, opREDUCE, opSTOP)
	res := AnalyzePickle(context.Background(), bytes.NewReader(p.bytes()), int64(len(p.b)), PickleOptions{Limits: Limits{MaxEvents: 50}})
	mustComplete(t, res)
	if findEvent(res, "call", "os.system") == nil {
		t.Errorf("dangerous call lost among unknown ones")
	}
	if res.DroppedEvents != 250 {
		t.Errorf("dropped %d events, want the 250 unknown imports past the limit", res.DroppedEvents)
	}
	if e := findEvent(res, "call", "builtins.set"); e == nil || e.Count != 300 {
		t.Errorf("safe calls are not merged: %+v", e)
	}
}

func TestPolicy(t *testing.T) {
	p := newPolicy([]string{"mypkg.*", "other.Thing"})
	cases := map[string]Severity{
		"torch._utils._rebuild_tensor_v2":              SeveritySafe,
		"torch.FloatStorage":                           SeveritySafe,
		"torch.cuda.HalfStorage":                       SeveritySafe,
		"torch.nn.modules.linear.Linear":               SeveritySafe,
		"torch.nn.modules.linear.some_function":        SeverityMedium,
		"numpy.core.multiarray._reconstruct":           SeveritySafe,
		"numpy._core.multiarray.scalar":                SeveritySafe,
		"collections.OrderedDict":                      SeveritySafe,
		"__builtin__.set":                              SeveritySafe,
		"copy_reg._reconstructor":                      SeveritySafe,
		"sklearn.tree._classes.DecisionTreeClassifier": SeverityLow,
		"sklearn.utils.some_function":                  SeverityMedium,
		"builtins.print":                               SeverityMedium,
		"requests.get":                                 SeverityHigh,
		"numpy.load":                                   SeverityHigh,
		"posix.system":                                 SeverityCritical,
		"nt.system":                                    SeverityCritical,
		"builtins.getattr":                             SeverityCritical,
		"_pickle.loads":                                SeverityCritical,
		"torch.load":                                   SeverityCritical,
		"torch.hub.load":                               SeverityCritical,
		"numpy.testing._private.utils.runstring":       SeverityCritical,
		"torch.serialization.os.system":                SeverityCritical,
		"random._os.system":                            SeverityCritical,
		"numpy.__builtins__":                           SeverityCritical,
		"x.__class__.__subclasses__":                   SeverityCritical,
		"mypkg.anything.Here":                          SeveritySafe,
		"other.Thing":                                  SeveritySafe,
		"other.Thing2":                                 SeverityMedium,
		"mypkg.__globals__":                            SeverityCritical, // allow never covers internals
	}
	for path, want := range cases {
		if got := p.classify(path).sev; got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
}

func TestRender(t *testing.T) {
	long := strings.Repeat("a", 1000)
	c := &pyContainer{kind: kindList}
	c.items = []value{c} // a list that contains itself
	c.n = 1
	got := renderArgs(&pyContainer{kind: kindTuple, items: []value{&pyStr{s: long, n: 5000, whole: false}, c, pyInt{big: "12345678901234567890"}}, n: 3}, nil)
	if len(got) > maxRender+8 || !strings.HasPrefix(got, `("aaaa`) {
		t.Errorf("render: %q", got)
	}
}
