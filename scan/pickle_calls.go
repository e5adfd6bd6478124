package scan

import (
	"fmt"
)

// This file gives the VM's imports and calls their meaning: which callable
// a value stands for, how it is judged, and what is recorded.

// maxResolveDepth bounds the recursion through nested calls and attributes.
const maxResolveDepth = 32

// importGlobal is GLOBAL, STACK_GLOBAL and the import half of INST.
func (m *vm) importGlobal(mod, name string) *pyGlobal {
	g := &pyGlobal{module: mod, name: name, path: normalizePath(mod + "." + name)}
	m.event("import", mod, name, "", m.pol.classify(g.path))
	return g
}

// dynamicGlobal is a STACK_GLOBAL whose module or name is not a literal
// string but something computed at load time: it can name anything, and no
// ordinary pickle does it.
func (m *vm) dynamicGlobal(modV, nameV value) *pyGlobal {
	mod, name := render(modV), render(nameV)
	m.event("import", mod, name, "", verdict{
		sev:    SeverityCritical,
		reason: "STACK_GLOBAL imports a module or name computed at load time, which hides what it imports",
		rule:   "scan.pickle.global.dynamic",
	})
	return &pyGlobal{module: mod, name: name, dynamic: true}
}

// extension is EXT1/2/4: the callable registered under the code with
// copyreg.add_extension. Nothing is registered by default.
func (m *vm) extension(code int64) *pyGlobal {
	name := fmt.Sprintf("extension code %d", code)
	m.event("import", "copyreg", name, "", verdict{
		sev:    SeverityMedium,
		reason: "EXT opcode: imports whatever copyreg.add_extension registered under this code; a stock Python has none and refuses the pickle, a process that registered one runs it",
		rule:   "scan.pickle.extension",
	})
	return &pyGlobal{module: "copyreg", name: name, dynamic: true}
}

// pathOf returns the dotted path of the callable, class or module v stands
// for, following getattr, import_module, attrgetter and the like.
func (m *vm) pathOf(v value, depth int) (string, bool) {
	if depth > maxResolveDepth {
		return "", false
	}
	switch x := v.(type) {
	case *pyGlobal:
		if x.dynamic {
			return "", false
		}
		return x.path, true
	case *pyPersID:
		// What persistent_load returns is up to the loader. The one
		// loader that uses persistent IDs for callables is torch.load's
		// legacy format: ("module", cls, source_file, source) returns cls.
		items := tupleItems(x.pid)
		if len(items) >= 2 {
			if kind, ok := strLit(items[0]); ok && kind == "module" {
				return m.pathOf(items[1], depth+1)
			}
		}
	case *pyCall:
		items := tupleItems(x.args)
		fp, ok := m.pathOf(x.fn, depth+1)
		if ok {
			switch fp {
			case "builtins.getattr", "dill._dill._get_attr":
				if len(items) >= 2 {
					if attr, ok := strLit(items[1]); ok {
						if base, ok := m.pathOf(items[0], depth+1); ok {
							return normalizePath(base + "." + attr), true
						}
					}
				}
			case "importlib.import_module", "builtins.__import__", "importlib.__import__", "dill._dill._import_module", "pkgutil.resolve_name":
				if len(items) >= 1 {
					if mod, ok := strLit(items[0]); ok {
						return normalizePath(mod), true
					}
				}
			case "operator.getitem", "_operator.getitem":
				// sys.modules["os"] is the module os; other lookups in a
				// namespace (numpy.__builtins__["eval"]) are judged like
				// the attribute of the same name.
				if len(items) >= 2 {
					if base, ok := m.pathOf(items[0], depth+1); ok {
						if key, ok := strLit(items[1]); ok {
							if base == "sys.modules" {
								return normalizePath(key), true
							}
							return normalizePath(base + "." + key), true
						}
					}
				}
			}
			return "", false
		}
		// attrgetter("a.b")(obj) is obj.a.b.
		if inner, ok := x.fn.(*pyCall); ok {
			if ip, ok := m.pathOf(inner.fn, depth+1); ok && ip == "operator.attrgetter" {
				innerItems := tupleItems(inner.args)
				if len(innerItems) >= 1 && len(items) >= 1 {
					if attr, ok := strLit(innerItems[0]); ok {
						if base, ok := m.pathOf(items[0], depth+1); ok {
							return normalizePath(base + "." + attr), true
						}
					}
				}
			}
		}
	}
	return "", false
}

// calleeOf returns the path of the callable that calling fn with args
// actually runs, and the arguments it runs with: calling
// methodcaller("system", cmd) on os runs os.system(cmd), calling
// partial(f, a) with b runs f(a, b).
func (m *vm) calleeOf(fn, args value, depth int) (string, value, bool) {
	if depth > maxResolveDepth {
		return "", args, false
	}
	if c, ok := fn.(*pyCall); ok {
		if inner, ok := m.pathOf(c.fn, depth+1); ok {
			innerItems := tupleItems(c.args)
			switch inner {
			case "operator.methodcaller":
				items := tupleItems(args)
				if len(innerItems) >= 1 && len(items) >= 1 {
					if meth, ok := strLit(innerItems[0]); ok {
						if base, ok := m.pathOf(items[0], depth+1); ok {
							return normalizePath(base + "." + meth), m.newTupleQuiet(innerItems[1:]), true
						}
					}
				}
			case "functools.partial":
				if len(innerItems) >= 1 {
					all := append(append([]value(nil), innerItems[1:]...), tupleItems(args)...)
					return m.calleeOf(innerItems[0], m.newTupleQuiet(all), depth+1)
				}
			}
		}
	}
	p, ok := m.pathOf(fn, depth+1)
	return p, args, ok
}

// newTupleQuiet builds a tuple for display without the VM's accounting.
func (m *vm) newTupleQuiet(items []value) *pyContainer {
	if len(items) > maxItemsKept {
		items = items[:maxItemsKept]
	}
	return &pyContainer{kind: kindTuple, items: items, n: int64(len(items))}
}

// payloadLoaders take bytes (or a BytesIO of bytes) that they unpickle:
// the bytes are a second file to scan.
var payloadLoaders = set(
	"pickle.loads", "pickle.load", "pickle._loads", "dill.loads", "cloudpickle.loads",
	"numpy.loads", "numpy.core.numeric.loads", "torch.load", "torch.serialization.load",
	"torch.storage._load_from_bytes", "joblib.load", "pandas.read_pickle", "marshal.loads",
)

// maxPayloads bounds the embedded payloads recorded per file.
const maxPayloads = 64

// call is REDUCE, NEWOBJ(_EX), OBJ and the call half of INST: it judges the
// callable that would run and returns a stand-in for its result.
func (m *vm) call(fn, args, kwargs value) value {
	c := &pyCall{fn: fn, args: args, kwargs: kwargs, op: opName(m.op), off: m.opOff}
	path, shown, ok := m.calleeOf(fn, args, 0)
	var v verdict
	var mod, name string
	if ok {
		v = m.pol.classify(path)
		mod, name = splitPath(path)
	} else {
		v = verdict{
			sev:    SeverityHigh,
			reason: "calls a callable computed at load time that cannot be named statically",
			rule:   "scan.pickle.call.computed",
		}
		name = render(fn)
	}
	v = m.escalate(path, c, v)
	m.event("call", mod, name, renderArgs(shown, kwargs), v)
	if ok {
		m.checkAllocation(path, c)
		if payloadLoaders[path] {
			m.payload(path, c)
		}
		if (path == "_codecs.encode" || path == "codecs.encode") && len(tupleItems(args)) >= 1 {
			// encode(text, "latin1") is how protocols 0-2 write bytes;
			// evaluating it keeps the bytes for a loader that gets them.
			if s, ok := tupleItems(args)[0].(*pyStr); ok && s.whole {
				if b, ok := latin1(s.s); ok {
					return &pyBytes{b: b, n: int64(len(b)), src: -1, whole: true}
				}
			}
		}
	}
	return c
}

// escalate raises the verdict on a call for what its arguments reveal.
func (m *vm) escalate(path string, c *pyCall, v verdict) verdict {
	items := tupleItems(c.args)
	switch path {
	case "functools.partial":
		if len(items) == 0 {
			return v
		}
		ip, _, ok := m.calleeOf(items[0], nil, 1)
		if !ok {
			return verdict{sev: SeverityHigh, reason: "functools.partial wrapping a callable computed at load time", rule: "scan.pickle.call.computed"}
		}
		if iv := m.pol.classify(ip); iv.sev > v.sev {
			return verdict{sev: iv.sev, reason: "functools.partial wrapping " + ip + ": " + iv.reason}
		}
	case "numpy.load":
		allow := len(items) >= 3 && truthy(items[2])
		if kw, ok := c.kwargs.(*pyContainer); ok && kw.kind == kindDict {
			for i := 0; i+1 < len(kw.items); i += 2 {
				if k, _ := strLit(kw.items[i]); k == "allow_pickle" && truthy(kw.items[i+1]) {
					allow = true
				}
			}
		}
		if allow {
			return verdict{sev: SeverityCritical, reason: "numpy.load with allow_pickle=True loads a pickle, which runs arbitrary code"}
		}
	}
	return v
}

// checkAllocation reports allowlisted constructors asked to allocate huge
// buffers: bytearray(10**12) is a memory bomb made only of safe names.
func (m *vm) checkAllocation(path string, c *pyCall) {
	switch path {
	case "builtins.bytearray", "builtins.bytes":
	default:
		return
	}
	for _, a := range tupleItems(c.args) {
		if i, ok := a.(pyInt); ok && (i.big != "" || i.v > 1<<28) {
			m.issue("alloc", "scan.pickle.expansion", SeverityMedium, "%s(%s) allocates a huge buffer on load", path, render(i))
		}
	}
}

// payload records the data handed to a loader.
func (m *vm) payload(path string, c *pyCall) {
	items := tupleItems(c.args)
	if len(items) == 0 || len(m.res.Payloads) >= maxPayloads {
		return
	}
	arg := items[0]
	// torch.load(io.BytesIO(b"...")) and the like.
	if inner, ok := arg.(*pyCall); ok {
		if p, ok := m.pathOf(inner.fn, 0); ok && (p == "io.BytesIO" || p == "io.StringIO") {
			if it := tupleItems(inner.args); len(it) >= 1 {
				arg = it[0]
			}
		}
	}
	p := Payload{Via: path, Offset: m.opOff, Src: -1}
	switch x := arg.(type) {
	case *pyBytes:
		switch {
		case x.src >= 0:
			p.Src, p.Len = x.src, x.n
		case x.whole:
			p.Data, p.Len = x.b, x.n
		default:
			return
		}
	case *pyStr:
		// A str payload (Python 2 pickles) is bytes as Latin-1 text.
		if !x.whole {
			return
		}
		b, ok := latin1(x.s)
		if !ok {
			return
		}
		p.Data, p.Len = b, int64(len(b))
	default:
		return
	}
	m.res.Payloads = append(m.res.Payloads, p)
}

// latin1 encodes s as Latin-1, failing on runes beyond U+00FF.
func latin1(s string) ([]byte, bool) {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return nil, false
		}
		b = append(b, byte(r))
	}
	return b, true
}

// build is BUILD: obj.__setstate__(state), or an update of obj's __dict__
// and setattr of slot state.
func (m *vm) build(obj, state value) {
	m.checkStateKeys(state)
	switch x := obj.(type) {
	case *pyGlobal:
		// BUILD on a class, function or module (not an instance of one)
		// monkeypatches it for every later user in the process.
		m.event("call", x.module, x.name+".__setstate__", render(state), verdict{
			sev:    SeverityHigh,
			reason: "BUILD sets attributes on " + x.module + "." + x.name + " itself (a class, function or module), changing it for all later code",
			rule:   "scan.pickle.build.global",
		})
	case *pyCall:
		path, _, ok := m.calleeOf(x.fn, x.args, 0)
		if !ok {
			return // the creation was reported as a computed call
		}
		v := m.pol.classify(path)
		mod, name := splitPath(path)
		m.event("call", mod, name+".__setstate__", render(state), v)
	}
}

// checkStateKeys reports state that sets Python internals on the object,
// such as __class__ (which swaps its type) or __reduce__.
func (m *vm) checkStateKeys(state value) {
	var dicts []*pyContainer
	if c, ok := state.(*pyContainer); ok {
		switch c.kind {
		case kindDict:
			dicts = append(dicts, c)
		case kindTuple:
			for _, it := range c.items {
				if d, ok := it.(*pyContainer); ok && d.kind == kindDict {
					dicts = append(dicts, d)
				}
			}
		}
	}
	for _, d := range dicts {
		for i := 0; i+1 < len(d.items); i += 2 {
			k, ok := strLit(d.items[i])
			if !ok || k == "__dict__" || !(dunderReach[k] || stateDunders[k]) {
				continue
			}
			m.event("state", "", k, render(d.items[i+1]), verdict{
				sev:    SeverityHigh,
				reason: "BUILD state sets " + k + " on the object, replacing Python machinery rather than data",
				rule:   "scan.pickle.build.dunder",
			})
		}
	}
}

// stateDunders are special attributes whose replacement through BUILD
// changes how an object behaves rather than what it holds.
var stateDunders = set("__class__", "__reduce__", "__reduce_ex__", "__setstate__", "__getstate__",
	"__getattr__", "__getattribute__", "__setattr__", "__call__", "__init__", "__new__", "__del__")

// event records an import or call, merging repeats.
func (m *vm) event(kind, mod, name, args string, v verdict) {
	rule := v.rule
	if rule == "" && v.sev > SeveritySafe {
		class := "unknown"
		switch {
		case v.sev >= SeverityHigh:
			class = "dangerous"
		case v.sev == SeverityLow:
			class = "suspicious"
		}
		if kind == "import" {
			rule = "scan.pickle.global." + class
		} else {
			rule = "scan.pickle.call." + class
		}
	}
	if v.sev == SeveritySafe {
		args = ""
	}
	// Below HIGH, repeats of a callable merge whatever their arguments (a
	// forest pickle builds hundreds of trees); dangerous calls stay apart
	// so that each payload shows.
	keyArgs := args
	if v.sev < SeverityHigh {
		keyArgs = ""
	}
	key := evKey{kind: kind, path: mod + "\x00" + name, args: keyArgs, rule: rule}
	if i, ok := m.evIdx[key]; ok {
		m.res.Events[i].Count++
		return
	}
	// Each severity has its own budget, so that a flood of harmless or
	// merely unknown events cannot push a dangerous one out of the list.
	if m.evCount[v.sev] >= m.lim.MaxEvents {
		m.res.DroppedEvents++
		return
	}
	m.evCount[v.sev]++
	m.evIdx[key] = len(m.res.Events)
	m.res.Events = append(m.res.Events, PickleEvent{
		Kind: kind, Offset: m.opOff, Opcode: opName(m.op), Module: mod, Name: name,
		Args: args, Severity: v.sev, Rule: rule, Reason: v.reason, Count: 1,
	})
}

// torchStorage records a PyTorch storage reference.
func (m *vm) torchStorage(pid value) {
	items := tupleItems(pid)
	if len(items) < 5 || len(m.res.TorchStorages) >= maxTorchStorages {
		return
	}
	if kind, _ := strLit(items[0]); kind != "storage" {
		return
	}
	typ, ok1 := m.pathOf(items[1], 0)
	key, ok2 := strLit(items[2])
	n, ok3 := items[4].(pyInt)
	if ok1 && ok2 && ok3 && n.big == "" {
		m.res.TorchStorages = append(m.res.TorchStorages, TorchStorage{Key: key, Type: typ, Numel: n.v})
	}
}

// joblibArray handles joblib's NumpyArrayWrapper: joblib.dump pickles the
// wrapper, then writes the array itself into the same stream, and its
// unpickler reads it right after the wrapper's BUILD. For a numeric dtype
// that is an optional padding byte and padding (joblib >= 1.2 aligns the
// data) then shape × itemsize raw bytes, which are skipped; for an object
// dtype it is a complete nested pickle, which is analysed like the rest.
func (m *vm) joblibArray(obj, state value) *PickleError {
	c, ok := obj.(*pyCall)
	if !ok {
		return nil
	}
	if p, _, ok := m.calleeOf(c.fn, c.args, 0); !ok || p != "joblib.numpy_pickle.NumpyArrayWrapper" {
		return nil
	}
	d, ok := state.(*pyContainer)
	if !ok || d.kind != kindDict {
		return nil
	}
	var dtype string
	var shape []value
	haveShape, aligned := false, false
	for i := 0; i+1 < len(d.items); i += 2 {
		k, _ := strLit(d.items[i])
		v := d.items[i+1]
		switch k {
		case "dtype":
			if dc, ok := v.(*pyCall); ok {
				if p, _, ok := m.calleeOf(dc.fn, dc.args, 0); ok && p == "numpy.dtype" {
					if a := tupleItems(dc.args); len(a) > 0 {
						dtype, _ = strLit(a[0])
					}
				}
			}
		case "shape":
			if sc, ok := v.(*pyContainer); ok && sc.kind == kindTuple && int64(len(sc.items)) == sc.n {
				shape, haveShape = sc.items, true
			}
		case "numpy_array_alignment_bytes":
			_, isNone := v.(pyNone)
			aligned = !isNone
		}
	}
	if dtype == "" || !haveShape {
		return m.fail("invalid", "joblib NumpyArrayWrapper without a literal dtype and shape: the array data that follows cannot be located")
	}
	size, object, err := simpleDescrSize(dtype)
	if err != nil {
		return m.fail("invalid", "joblib NumpyArrayWrapper with dtype %q: %v", dtype, err)
	}
	if object {
		// A nested pickle on its own stack, as joblib's pickle.load reads it.
		stack, marks := m.stack, m.marks
		m.stack, m.marks = nil, nil
		_, perr := m.runStream()
		m.stack, m.marks = stack, marks
		return perr
	}
	count := int64(1)
	for _, v := range shape {
		n, ok := v.(pyInt)
		if !ok || n.big != "" || n.v < 0 || (n.v != 0 && count > (1<<62)/n.v) {
			return m.fail("invalid", "joblib NumpyArrayWrapper with a bad shape")
		}
		count *= n.v
	}
	if aligned {
		b, err := m.readN(1)
		if err != nil {
			return err
		}
		if err := m.rd.skip(int64(b[0])); err != nil {
			return m.fail("truncated", "joblib array padding runs past the input")
		}
	}
	if size != 0 && count > m.rd.remaining()/size {
		return m.fail("truncated", "joblib array of %d × %d bytes but only %d remain", count, size, m.rd.remaining())
	}
	_ = m.rd.skip(count * size)
	return nil
}
