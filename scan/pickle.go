package scan

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Pickle opcodes, protocols 0 to 5, named as in Python's pickletools.
const (
	opMARK            = '('
	opSTOP            = '.'
	opPOP             = '0'
	opPOP_MARK        = '1'
	opDUP             = '2'
	opFLOAT           = 'F'
	opINT             = 'I'
	opBININT          = 'J'
	opBININT1         = 'K'
	opLONG            = 'L'
	opBININT2         = 'M'
	opNONE            = 'N'
	opPERSID          = 'P'
	opBINPERSID       = 'Q'
	opREDUCE          = 'R'
	opSTRING          = 'S'
	opBINSTRING       = 'T'
	opSHORT_BINSTRING = 'U'
	opUNICODE         = 'V'
	opBINUNICODE      = 'X'
	opAPPEND          = 'a'
	opBUILD           = 'b'
	opGLOBAL          = 'c'
	opDICT            = 'd'
	opEMPTY_DICT      = '}'
	opAPPENDS         = 'e'
	opGET             = 'g'
	opBINGET          = 'h'
	opINST            = 'i'
	opLONG_BINGET     = 'j'
	opLIST            = 'l'
	opEMPTY_LIST      = ']'
	opOBJ             = 'o'
	opPUT             = 'p'
	opBINPUT          = 'q'
	opLONG_BINPUT     = 'r'
	opSETITEM         = 's'
	opTUPLE           = 't'
	opEMPTY_TUPLE     = ')'
	opSETITEMS        = 'u'
	opBINFLOAT        = 'G'

	opPROTO    = 0x80
	opNEWOBJ   = 0x81
	opEXT1     = 0x82
	opEXT2     = 0x83
	opEXT4     = 0x84
	opTUPLE1   = 0x85
	opTUPLE2   = 0x86
	opTUPLE3   = 0x87
	opNEWTRUE  = 0x88
	opNEWFALSE = 0x89
	opLONG1    = 0x8a
	opLONG4    = 0x8b

	opBINBYTES       = 'B'
	opSHORT_BINBYTES = 'C'

	opSHORT_BINUNICODE = 0x8c
	opBINUNICODE8      = 0x8d
	opBINBYTES8        = 0x8e
	opEMPTY_SET        = 0x8f
	opADDITEMS         = 0x90
	opFROZENSET        = 0x91
	opNEWOBJ_EX        = 0x92
	opSTACK_GLOBAL     = 0x93
	opMEMOIZE          = 0x94
	opFRAME            = 0x95

	opBYTEARRAY8      = 0x96
	opNEXT_BUFFER     = 0x97
	opREADONLY_BUFFER = 0x98
)

var opNames = map[byte]string{
	opMARK: "MARK", opSTOP: "STOP", opPOP: "POP", opPOP_MARK: "POP_MARK", opDUP: "DUP",
	opFLOAT: "FLOAT", opINT: "INT", opBININT: "BININT", opBININT1: "BININT1", opLONG: "LONG",
	opBININT2: "BININT2", opNONE: "NONE", opPERSID: "PERSID", opBINPERSID: "BINPERSID",
	opREDUCE: "REDUCE", opSTRING: "STRING", opBINSTRING: "BINSTRING",
	opSHORT_BINSTRING: "SHORT_BINSTRING", opUNICODE: "UNICODE", opBINUNICODE: "BINUNICODE",
	opAPPEND: "APPEND", opBUILD: "BUILD", opGLOBAL: "GLOBAL", opDICT: "DICT",
	opEMPTY_DICT: "EMPTY_DICT", opAPPENDS: "APPENDS", opGET: "GET", opBINGET: "BINGET",
	opINST: "INST", opLONG_BINGET: "LONG_BINGET", opLIST: "LIST", opEMPTY_LIST: "EMPTY_LIST",
	opOBJ: "OBJ", opPUT: "PUT", opBINPUT: "BINPUT", opLONG_BINPUT: "LONG_BINPUT",
	opSETITEM: "SETITEM", opTUPLE: "TUPLE", opEMPTY_TUPLE: "EMPTY_TUPLE", opSETITEMS: "SETITEMS",
	opBINFLOAT: "BINFLOAT", opPROTO: "PROTO", opNEWOBJ: "NEWOBJ", opEXT1: "EXT1", opEXT2: "EXT2",
	opEXT4: "EXT4", opTUPLE1: "TUPLE1", opTUPLE2: "TUPLE2", opTUPLE3: "TUPLE3",
	opNEWTRUE: "NEWTRUE", opNEWFALSE: "NEWFALSE", opLONG1: "LONG1", opLONG4: "LONG4",
	opBINBYTES: "BINBYTES", opSHORT_BINBYTES: "SHORT_BINBYTES",
	opSHORT_BINUNICODE: "SHORT_BINUNICODE", opBINUNICODE8: "BINUNICODE8", opBINBYTES8: "BINBYTES8",
	opEMPTY_SET: "EMPTY_SET", opADDITEMS: "ADDITEMS", opFROZENSET: "FROZENSET",
	opNEWOBJ_EX: "NEWOBJ_EX", opSTACK_GLOBAL: "STACK_GLOBAL", opMEMOIZE: "MEMOIZE", opFRAME: "FRAME",
	opBYTEARRAY8: "BYTEARRAY8", opNEXT_BUFFER: "NEXT_BUFFER", opREADONLY_BUFFER: "READONLY_BUFFER",
}

// opName names opcode b, or gives its hex value when it is not one.
func opName(b byte) string {
	if n, ok := opNames[b]; ok {
		return n
	}
	return fmt.Sprintf("0x%02x", b)
}

// HighestProtocol is the newest pickle protocol the VM knows; a PROTO opcode
// asking for a newer one makes Python refuse the stream.
const HighestProtocol = 5

// legacyTorchMagic is the first object torch.save's legacy (non-zip) format
// pickles: after it come four more pickles, then raw storage bytes.
const legacyTorchMagic = "119547037146038801333356"

// PickleEvent is one import or call that loading the pickle would perform.
type PickleEvent struct {
	// Kind is "import" or "call" (BUILD is a call of __setstate__).
	Kind   string `json:"kind"`
	Offset int64  `json:"offset"`
	Opcode string `json:"opcode"`
	// Module and Name are the callable as resolved; Name is "?" when the
	// callable was computed at load time and cannot be named.
	Module   string   `json:"module"`
	Name     string   `json:"name"`
	Args     string   `json:"args,omitempty"`
	Severity Severity `json:"severity"`
	Rule     string   `json:"rule,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Count    int      `json:"count"`
}

// PickleIssue is a problem with the stream itself: a resource limit, an
// expansion attack, an opcode Python would refuse, truncation.
type PickleIssue struct {
	Rule     string
	Severity Severity
	Offset   int64
	Opcode   string
	Message  string
}

// Payload is data that the pickle hands to a loader (pickle.loads,
// torch.load of BytesIO, ...): the scanner analyses it in turn. Src and Len
// locate it in the stream when it is there verbatim; otherwise Data holds
// it.
type Payload struct {
	Via    string
	Offset int64
	Src    int64
	Len    int64
	Data   []byte
}

// PickleResult is what AnalyzePickle found.
type PickleResult struct {
	// Events are the distinct imports and calls in order of first
	// occurrence, allowlisted ones included (their Args are dropped so that
	// they group per callable).
	Events []PickleEvent
	// DroppedEvents counts events beyond Limits.MaxEvents.
	DroppedEvents int
	Issues        []PickleIssue
	Payloads      []Payload
	// Streams is the number of pickles that ran to STOP.
	Streams int
	Ops     int64
	// Err is the error that stopped the first stream (nil when it reached
	// STOP): the file cannot be loaded as a pickle.
	Err *PickleError
	// LegacyTorch is set when the file is torch.save's legacy format.
	LegacyTorch bool
	// TorchStorages are the storages the pickle refers to through
	// persistent IDs ("storage", type, key, location, numel, ...), which
	// locate tensor data in PyTorch files.
	TorchStorages []TorchStorage
	// End is the offset after the last stream that ran to STOP.
	End int64
}

// TorchStorage is one storage named by a PyTorch persistent ID.
type TorchStorage struct {
	Key   string
	Type  string // "torch.FloatStorage"
	Numel int64
}

// maxTorchStorages bounds the storages recorded per file.
const maxTorchStorages = 1_000_000

// PickleError says why a stream could not be followed to its end.
type PickleError struct {
	// Kind is "invalid" (Python would refuse it), "truncated" (the input
	// ends, or a declared length runs past it), "limit" or "io".
	Kind   string
	Offset int64
	Opcode string
	Msg    string
}

func (e *PickleError) Error() string {
	if e.Opcode != "" {
		return fmt.Sprintf("%s at offset %d (%s): %s", e.Kind, e.Offset, e.Opcode, e.Msg)
	}
	return fmt.Sprintf("%s at offset %d: %s", e.Kind, e.Offset, e.Msg)
}

// PickleOptions configures AnalyzePickle.
type PickleOptions struct {
	Limits Limits
	// Allow lists extra callables to treat as safe ("module.name", or
	// "module.*" for a whole module tree).
	Allow []string
}

// AnalyzePickle follows the pickle (or concatenated pickles) in r[0:size)
// without executing anything and reports every import and call that
// loading it would perform. It never panics and its memory and time are
// bounded by opts.Limits whatever the input.
func AnalyzePickle(ctx context.Context, r io.ReaderAt, size int64, opts PickleOptions) *PickleResult {
	return analyzePickle(ctx, r, 0, size, opts.Limits.withDefaults(), newPolicy(opts.Allow))
}

func analyzePickle(ctx context.Context, r io.ReaderAt, start, end int64, lim Limits, pol *policy) *PickleResult {
	m := &vm{
		ctx:   ctx,
		rd:    newWindowReader(r, start, end),
		lim:   lim,
		pol:   pol,
		res:   &PickleResult{End: start},
		memo:  map[int64]value{},
		evIdx: map[evKey]int{},
		input: end - start,
	}
	m.run()
	return m.res
}

// vm is the symbolic pickle machine. Its stack is one slice with the mark
// positions kept apart, as in CPython's _pickle.c: an opcode may not pop
// below the innermost mark.
type vm struct {
	ctx   context.Context
	rd    *windowReader
	lim   Limits
	pol   *policy
	res   *PickleResult
	stack []value
	marks []int
	memo  map[int64]value
	evIdx map[evKey]int
	input int64

	ops           int64
	evCount       [SeverityCritical + 1]int
	retainedBytes int64
	retainedItems int64
	opOff         int64
	op            byte
	reported      map[string]bool // issues reported once per file
}

type evKey struct {
	kind, path, args, rule string
}

func (m *vm) fail(kind, format string, args ...any) *PickleError {
	return &PickleError{Kind: kind, Offset: m.opOff, Opcode: opName(m.op), Msg: fmt.Sprintf(format, args...)}
}

// issue records a problem with the stream, once per rule and key.
func (m *vm) issue(once string, rule string, sev Severity, format string, args ...any) {
	if once != "" {
		if m.reported == nil {
			m.reported = map[string]bool{}
		}
		if m.reported[once] {
			return
		}
		m.reported[once] = true
	}
	m.res.Issues = append(m.res.Issues, PickleIssue{Rule: rule, Severity: sev, Offset: m.opOff, Opcode: opName(m.op), Message: fmt.Sprintf(format, args...)})
}

// run follows the streams one after the other.
func (m *vm) run() {
	if m.rd.remaining() <= 0 {
		m.res.Err = &PickleError{Kind: "truncated", Offset: m.rd.pos, Msg: "empty input"}
		return
	}
	for stream := 0; m.rd.remaining() > 0; stream++ {
		if stream >= m.lim.MaxStreams {
			m.issue("streams", "scan.pickle.limit", SeverityMedium, "more than %d concatenated pickles; the rest of the file (%d bytes) was not analysed", m.lim.MaxStreams, m.rd.remaining())
			return
		}
		start := m.rd.pos
		first, _ := m.peekByte()
		top, err := m.runStream()
		if err != nil {
			m.streamFailed(stream, start, first, err)
			return
		}
		m.res.Streams++
		m.res.End = m.rd.pos
		if stream == 0 {
			if i, ok := top.(pyInt); ok && i.big == legacyTorchMagic {
				m.res.LegacyTorch = true
			}
		}
		// torch.save's legacy format is five pickles (magic number,
		// protocol version, system info, the object, the storage keys)
		// followed by raw storage bytes that are not pickle data.
		if m.res.LegacyTorch && m.res.Streams == 5 {
			return
		}
	}
}

func (m *vm) peekByte() (byte, bool) {
	pos := m.rd.pos
	b, err := m.rd.readByte()
	m.rd.pos = pos
	return b, err == nil
}

// streamFailed decides what a failure means. In the first stream it makes
// the file unloadable (Err). In a later one it is either trailing data that
// pickle.load never reads (INFO) or, when the bytes start like a pickle, a
// broken second pickle that a loader calling load() repeatedly would reach.
func (m *vm) streamFailed(stream int, start int64, first byte, err *PickleError) {
	switch {
	case stream == 0, err.Kind == "io":
		m.res.Err = err
	case err.Kind == "limit":
		m.issue("", "scan.pickle.limit", SeverityMedium, "pickle stream %d: analysis stopped, the rest was not checked: %v", stream+1, err)
	case first == opPROTO:
		m.issue("", "scan.unparseable", SeverityMedium, "pickle stream %d at offset %d cannot be loaded: %v", stream+1, start, err)
	default:
		m.issue("", "scan.pickle.trailing-data", SeverityInfo, "%d bytes after the pickle at offset %d are not pickle data (pickle.load ignores them)", m.rd.size-start, start)
	}
}

// fence is the stack position below which opcodes may not pop.
func (m *vm) fence() int {
	if len(m.marks) == 0 {
		return 0
	}
	return m.marks[len(m.marks)-1]
}

func (m *vm) push(v value) *PickleError {
	if len(m.stack)+len(m.marks) >= m.lim.MaxStack {
		return m.fail("limit", "stack holds more than %d values", m.lim.MaxStack)
	}
	m.stack = append(m.stack, v)
	return nil
}

func (m *vm) pop() (value, *PickleError) {
	if len(m.stack) <= m.fence() {
		return nil, m.fail("invalid", "stack underflow")
	}
	v := m.stack[len(m.stack)-1]
	m.stack[len(m.stack)-1] = nil
	m.stack = m.stack[:len(m.stack)-1]
	return v, nil
}

func (m *vm) top() (value, *PickleError) {
	if len(m.stack) <= m.fence() {
		return nil, m.fail("invalid", "stack underflow")
	}
	return m.stack[len(m.stack)-1], nil
}

// popMark pops everything down to the innermost mark, and the mark.
func (m *vm) popMark() ([]value, *PickleError) {
	if len(m.marks) == 0 {
		return nil, m.fail("invalid", "no MARK on the stack")
	}
	k := m.marks[len(m.marks)-1]
	m.marks = m.marks[:len(m.marks)-1]
	items := make([]value, len(m.stack)-k)
	copy(items, m.stack[k:])
	clear(m.stack[k:])
	m.stack = m.stack[:k]
	return items, nil
}

// newContainer builds a container holding items.
func (m *vm) newContainer(kind int, items []value) *pyContainer {
	c := &pyContainer{kind: kind, size: 1}
	m.addItems(c, items)
	return c
}

// addItems appends items to c, keeping what the budget allows and keeping
// the expansion and nesting accounts.
func (m *vm) addItems(c *pyContainer, items []value) {
	for _, it := range items {
		c.n++
		if len(c.items) < maxItemsKept && (c.kind == kindTuple || m.retainedItems < m.lim.MaxRetainedItems) {
			c.items = append(c.items, it)
			m.retainedItems++
		}
		c.size = satAdd(c.size, sizeOf(it))
		if d := depthOf(it) + 1; d > c.depth {
			c.depth = d
		}
	}
	if c.size > m.lim.MaxExpansion && c.size/64 > m.input {
		m.issue("expansion", "scan.pickle.expansion", SeverityMedium, "a container stands for more than %d values once its shared references are expanded (the input is %d bytes): an expansion bomb for anything that walks or copies the loaded object", m.lim.MaxExpansion, m.input)
	}
	if c.depth > m.lim.MaxNesting {
		m.issue("nesting", "scan.pickle.limit", SeverityMedium, "containers nested more than %d deep: walking the loaded object recurses past Python's limit", m.lim.MaxNesting)
	}
}

// keepLen decides how much of an n-byte string to keep.
func (m *vm) keepLen(n int64, want int) int {
	if int64(want) > n {
		want = int(n)
	}
	if m.retainedBytes+int64(want) > m.lim.MaxRetainedBytes {
		want = min(want, 64)
	}
	m.retainedBytes += int64(want)
	return want
}

// readCounted reads a length-prefixed string or bytes of n bytes, checking n
// against what is left so that a lying length costs nothing.
func (m *vm) readCounted(n int64, keep int) ([]byte, int64, *PickleError) {
	if n < 0 {
		return nil, 0, m.fail("invalid", "negative length %d", n)
	}
	if n > m.rd.remaining() {
		return nil, 0, m.fail("truncated", "declares %d bytes but only %d remain", n, m.rd.remaining())
	}
	src := m.rd.pos
	b, err := m.rd.readKeep(n, m.keepLen(n, keep))
	if err != nil {
		return nil, 0, m.ioErr(err)
	}
	return b, src, nil
}

func (m *vm) ioErr(err error) *PickleError {
	if m.rd.ioErr != nil {
		return m.fail("io", "reading: %v", m.rd.ioErr)
	}
	if errors.Is(err, errShort) {
		return m.fail("truncated", "the input ends inside the opcode's argument")
	}
	return m.fail("io", "reading: %v", err)
}

func (m *vm) readN(n int) ([]byte, *PickleError) {
	b := make([]byte, n)
	if err := m.rd.readFull(b); err != nil {
		return nil, m.ioErr(err)
	}
	return b, nil
}

// line reads a text argument (protocol 0), keeping at most keep bytes.
func (m *vm) line(keep int) (string, int64, *PickleError) {
	b, n, err := m.rd.readLine(keep)
	if err != nil {
		if errors.Is(err, errShort) {
			return "", 0, m.fail("truncated", "the input ends before the newline that ends the argument")
		}
		return "", 0, m.ioErr(err)
	}
	return string(b), n, nil
}

// textLine reads the argument of STRING or UNICODE, keeping as much as the
// string budget allows and charging the budget with what was kept.
func (m *vm) textLine() (string, int64, *PickleError) {
	keep := m.lim.MaxStringKept
	if m.retainedBytes >= m.lim.MaxRetainedBytes {
		keep = 64
	}
	s, n, err := m.line(keep)
	m.retainedBytes += int64(len(s))
	return s, n, err
}

// maxNameLine bounds the module and name lines of GLOBAL and INST, and the
// numbers of INT, LONG, GET, PUT: longer ones keep a prefix.
const maxNameLine = 4096

func (m *vm) str(b []byte, n, src int64) *pyStr {
	return &pyStr{s: string(b), n: n, src: src, whole: int64(len(b)) == n}
}

func (m *vm) bytesVal(b []byte, n, src int64, array bool) *pyBytes {
	return &pyBytes{b: b, n: n, src: src, whole: int64(len(b)) == n, array: array}
}

// runStream executes opcodes until STOP and returns the value STOP pops.
func (m *vm) runStream() (value, *PickleError) {
	for {
		if m.ops >= m.lim.MaxOps {
			m.opOff = m.rd.pos
			return nil, m.fail("limit", "more than %d opcodes", m.lim.MaxOps)
		}
		m.ops++
		m.res.Ops = m.ops
		if m.ops&0xffff == 0 && m.ctx != nil && m.ctx.Err() != nil {
			return nil, m.fail("limit", "stopped: %v", m.ctx.Err())
		}
		m.opOff = m.rd.pos
		op, err := m.rd.readByte()
		if err != nil {
			m.op = 0
			if m.rd.ioErr != nil {
				return nil, m.fail("io", "reading: %v", m.rd.ioErr)
			}
			return nil, &PickleError{Kind: "truncated", Offset: m.opOff, Msg: "the pickle ends without a STOP opcode"}
		}
		m.op = op
		if op == opSTOP {
			v, perr := m.pop()
			if perr != nil {
				return nil, perr
			}
			return v, nil
		}
		if perr := m.step(op); perr != nil {
			return nil, perr
		}
	}
}

// step executes one opcode other than STOP.
func (m *vm) step(op byte) *PickleError {
	switch op {
	case opPROTO:
		b, err := m.readN(1)
		if err != nil {
			return err
		}
		if b[0] > HighestProtocol {
			return m.fail("invalid", "unsupported pickle protocol %d", b[0])
		}
		return nil
	case opFRAME:
		b, err := m.readN(8)
		if err != nil {
			return err
		}
		// Frames only group opcodes for buffering; what matters is that the
		// declared length fits.
		n := binary.LittleEndian.Uint64(b)
		if n > uint64(m.rd.remaining()) {
			return m.fail("truncated", "FRAME declares %d bytes but only %d remain", n, m.rd.remaining())
		}
		return nil
	case opMARK:
		if len(m.stack)+len(m.marks) >= m.lim.MaxStack {
			return m.fail("limit", "stack holds more than %d values", m.lim.MaxStack)
		}
		m.marks = append(m.marks, len(m.stack))
		if len(m.marks) > m.lim.MaxNesting {
			m.issue("nesting", "scan.pickle.limit", SeverityMedium, "more than %d nested MARKs", m.lim.MaxNesting)
		}
		return nil
	case opPOP:
		// As in _pickle.c: POP discards a mark when the mark is on top.
		if n := len(m.marks); n > 0 && m.marks[n-1] == len(m.stack) {
			m.marks = m.marks[:n-1]
			return nil
		}
		_, err := m.pop()
		return err
	case opPOP_MARK:
		_, err := m.popMark()
		return err
	case opDUP:
		v, err := m.top()
		if err != nil {
			return err
		}
		return m.push(v)

	// Constants.
	case opNONE:
		return m.push(pyNone{})
	case opNEWTRUE:
		return m.push(pyBool(true))
	case opNEWFALSE:
		return m.push(pyBool(false))
	case opBININT:
		b, err := m.readN(4)
		if err != nil {
			return err
		}
		return m.push(pyInt{v: int64(int32(binary.LittleEndian.Uint32(b)))})
	case opBININT1:
		b, err := m.readN(1)
		if err != nil {
			return err
		}
		return m.push(pyInt{v: int64(b[0])})
	case opBININT2:
		b, err := m.readN(2)
		if err != nil {
			return err
		}
		return m.push(pyInt{v: int64(binary.LittleEndian.Uint16(b))})
	case opINT:
		s, _, err := m.line(maxNameLine)
		if err != nil {
			return err
		}
		switch s {
		case "00":
			return m.push(pyBool(false))
		case "01":
			return m.push(pyBool(true))
		}
		v, ok := parseIntText(s)
		if !ok {
			return m.fail("invalid", "INT argument %q is not an integer", shortText(s))
		}
		return m.push(v)
	case opLONG:
		s, _, err := m.line(maxNameLine)
		if err != nil {
			return err
		}
		v, ok := parseIntText(strings.TrimSuffix(strings.TrimSpace(s), "L"))
		if !ok {
			return m.fail("invalid", "LONG argument %q is not an integer", shortText(s))
		}
		return m.push(v)
	case opLONG1, opLONG4:
		var n int64
		if op == opLONG1 {
			b, err := m.readN(1)
			if err != nil {
				return err
			}
			n = int64(b[0])
		} else {
			b, err := m.readN(4)
			if err != nil {
				return err
			}
			n = int64(int32(binary.LittleEndian.Uint32(b)))
		}
		b, _, err := m.readCounted(n, 64)
		if err != nil {
			return err
		}
		return m.push(longValue(b, n))
	case opFLOAT:
		s, _, err := m.line(maxNameLine)
		if err != nil {
			return err
		}
		f, perr := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if perr != nil && !errors.Is(perr, strconv.ErrRange) {
			return m.fail("invalid", "FLOAT argument %q is not a number", shortText(s))
		}
		return m.push(pyFloat(f))
	case opBINFLOAT:
		b, err := m.readN(8)
		if err != nil {
			return err
		}
		return m.push(pyFloat(math.Float64frombits(binary.BigEndian.Uint64(b))))

	// Strings and bytes.
	case opSTRING:
		s, n, err := m.textLine()
		if err != nil {
			return err
		}
		s = strings.TrimRight(s, " \r")
		if len(s) < 2 || (s[0] != '"' && s[0] != '\'') || (int64(len(s)) == n && s[len(s)-1] != s[0]) {
			return m.fail("invalid", "STRING argument is not a quoted string")
		}
		whole := int64(len(s)) == n
		body := s[1:]
		if whole {
			body = body[:len(body)-1]
		}
		dec := decodeEscapes(body)
		return m.push(&pyStr{s: dec, n: int64(len(dec)), src: -1, whole: whole})
	case opBINSTRING, opSHORT_BINSTRING, opBINUNICODE, opSHORT_BINUNICODE, opBINUNICODE8,
		opBINBYTES, opSHORT_BINBYTES, opBINBYTES8, opBYTEARRAY8:
		return m.counted(op)
	case opUNICODE:
		s, n, err := m.textLine()
		if err != nil {
			return err
		}
		dec := decodeRawUnicodeEscape(s)
		return m.push(&pyStr{s: dec, n: int64(len(dec)), src: -1, whole: int64(len(s)) == n})

	// Containers.
	case opEMPTY_TUPLE:
		return m.push(m.newContainer(kindTuple, nil))
	case opEMPTY_LIST:
		return m.push(m.newContainer(kindList, nil))
	case opEMPTY_DICT:
		return m.push(m.newContainer(kindDict, nil))
	case opEMPTY_SET:
		return m.push(m.newContainer(kindSet, nil))
	case opTUPLE1, opTUPLE2, opTUPLE3:
		n := int(op-opTUPLE1) + 1
		if len(m.stack)-n < m.fence() {
			return m.fail("invalid", "stack underflow")
		}
		items := append([]value(nil), m.stack[len(m.stack)-n:]...)
		clear(m.stack[len(m.stack)-n:])
		m.stack = m.stack[:len(m.stack)-n]
		return m.push(m.newContainer(kindTuple, items))
	case opTUPLE, opLIST, opFROZENSET:
		items, err := m.popMark()
		if err != nil {
			return err
		}
		kind := kindTuple
		if op == opLIST {
			kind = kindList
		} else if op == opFROZENSET {
			kind = kindFrozenSet
		}
		return m.push(m.newContainer(kind, items))
	case opDICT:
		items, err := m.popMark()
		if err != nil {
			return err
		}
		if len(items)%2 != 0 {
			return m.fail("invalid", "odd number of items for DICT")
		}
		return m.push(m.newContainer(kindDict, items))
	case opAPPEND:
		v, err := m.pop()
		if err != nil {
			return err
		}
		t, err := m.top()
		if err != nil {
			return err
		}
		m.addTo(t, []value{v})
		return nil
	case opAPPENDS, opADDITEMS, opSETITEMS:
		items, err := m.popMark()
		if err != nil {
			return err
		}
		if op == opSETITEMS && len(items)%2 != 0 {
			return m.fail("invalid", "odd number of items for SETITEMS")
		}
		t, err := m.top()
		if err != nil {
			return err
		}
		m.addTo(t, items)
		return nil
	case opSETITEM:
		v, err := m.pop()
		if err != nil {
			return err
		}
		k, err := m.pop()
		if err != nil {
			return err
		}
		t, err := m.top()
		if err != nil {
			return err
		}
		m.addTo(t, []value{k, v})
		return nil

	// Memo.
	case opPUT, opBINPUT, opLONG_BINPUT, opMEMOIZE:
		idx, err := m.memoIndex(op)
		if err != nil {
			return err
		}
		v, err := m.top()
		if err != nil {
			return err
		}
		if _, exists := m.memo[idx]; !exists && len(m.memo) >= m.lim.MaxMemo {
			return m.fail("limit", "memo holds more than %d entries", m.lim.MaxMemo)
		}
		m.memo[idx] = v
		return nil
	case opGET, opBINGET, opLONG_BINGET:
		idx, err := m.memoIndex(op)
		if err != nil {
			return err
		}
		v, ok := m.memo[idx]
		if !ok {
			return m.fail("invalid", "memo has no entry %d", idx)
		}
		return m.push(v)

	// Imports and calls.
	case opGLOBAL:
		mod, _, err := m.line(maxNameLine)
		if err != nil {
			return err
		}
		name, _, err := m.line(maxNameLine)
		if err != nil {
			return err
		}
		return m.push(m.importGlobal(mod, name))
	case opSTACK_GLOBAL:
		nameV, err := m.pop()
		if err != nil {
			return err
		}
		modV, err := m.pop()
		if err != nil {
			return err
		}
		mod, okM := nameString(modV)
		name, okN := nameString(nameV)
		if !okM || !okN {
			return m.push(m.dynamicGlobal(modV, nameV))
		}
		return m.push(m.importGlobal(mod, name))
	case opINST:
		mod, _, err := m.line(maxNameLine)
		if err != nil {
			return err
		}
		name, _, err := m.line(maxNameLine)
		if err != nil {
			return err
		}
		args, perr := m.popMark()
		if perr != nil {
			return perr
		}
		cls := m.importGlobal(mod, name)
		return m.push(m.call(cls, m.newContainer(kindTuple, args), nil))
	case opOBJ:
		items, err := m.popMark()
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return m.fail("invalid", "OBJ without a class")
		}
		return m.push(m.call(items[0], m.newContainer(kindTuple, items[1:]), nil))
	case opREDUCE, opNEWOBJ:
		// Both call the callable (or class) under the argument tuple.
		args, err := m.pop()
		if err != nil {
			return err
		}
		fn, err := m.pop()
		if err != nil {
			return err
		}
		return m.push(m.call(fn, args, nil))
	case opNEWOBJ_EX:
		kwargs, err := m.pop()
		if err != nil {
			return err
		}
		args, err := m.pop()
		if err != nil {
			return err
		}
		cls, err := m.pop()
		if err != nil {
			return err
		}
		return m.push(m.call(cls, args, kwargs))
	case opBUILD:
		state, err := m.pop()
		if err != nil {
			return err
		}
		obj, err := m.top()
		if err != nil {
			return err
		}
		m.build(obj, state)
		return m.joblibArray(obj, state)
	case opEXT1, opEXT2, opEXT4:
		n := map[byte]int{opEXT1: 1, opEXT2: 2, opEXT4: 4}[op]
		b, err := m.readN(n)
		if err != nil {
			return err
		}
		var code int64
		switch n {
		case 1:
			code = int64(b[0])
		case 2:
			code = int64(binary.LittleEndian.Uint16(b))
		default:
			code = int64(int32(binary.LittleEndian.Uint32(b)))
		}
		return m.push(m.extension(code))
	case opPERSID:
		s, n, err := m.line(256)
		if err != nil {
			return err
		}
		return m.push(&pyPersID{pid: &pyStr{s: s, n: n, src: -1, whole: int64(len(s)) == n}})
	case opBINPERSID:
		pid, err := m.pop()
		if err != nil {
			return err
		}
		m.torchStorage(pid)
		return m.push(&pyPersID{pid: pid})
	case opNEXT_BUFFER:
		m.issue("buffer", "scan.pickle.buffer", SeverityInfo, "the pickle takes out-of-band buffers (protocol 5); pickle.loads refuses it unless the caller passes buffers=")
		return m.push(pyBuffer{})
	case opREADONLY_BUFFER:
		_, err := m.top()
		return err
	}
	return m.fail("invalid", "unknown opcode 0x%02x", op)
}

// counted handles the opcodes whose argument is a length then bytes.
func (m *vm) counted(op byte) *PickleError {
	var lenBytes int
	signed := false
	switch op {
	case opSHORT_BINSTRING, opSHORT_BINUNICODE, opSHORT_BINBYTES:
		lenBytes = 1
	case opBINSTRING:
		lenBytes, signed = 4, true
	case opBINUNICODE, opBINBYTES:
		lenBytes = 4
	default: // BINUNICODE8, BINBYTES8, BYTEARRAY8
		lenBytes = 8
	}
	b, err := m.readN(lenBytes)
	if err != nil {
		return err
	}
	var n int64
	switch lenBytes {
	case 1:
		n = int64(b[0])
	case 4:
		u := binary.LittleEndian.Uint32(b)
		if signed {
			n = int64(int32(u))
		} else {
			n = int64(u)
		}
	default:
		u := binary.LittleEndian.Uint64(b)
		if u > math.MaxInt64 {
			return m.fail("truncated", "declares %d bytes but only %d remain", u, m.rd.remaining())
		}
		n = int64(u)
	}
	switch op {
	case opBINUNICODE, opSHORT_BINUNICODE, opBINUNICODE8, opBINSTRING, opSHORT_BINSTRING:
		data, src, err := m.readCounted(n, m.lim.MaxStringKept)
		if err != nil {
			return err
		}
		return m.push(m.str(data, n, src))
	}
	data, src, err := m.readCounted(n, 256)
	if err != nil {
		return err
	}
	return m.push(m.bytesVal(data, n, src, op == opBYTEARRAY8))
}

// memoIndex reads the memo index argument of a PUT/GET family opcode.
func (m *vm) memoIndex(op byte) (int64, *PickleError) {
	var idx int64
	switch op {
	case opMEMOIZE:
		return int64(len(m.memo)), nil
	case opBINPUT, opBINGET:
		b, err := m.readN(1)
		if err != nil {
			return 0, err
		}
		idx = int64(b[0])
	case opLONG_BINPUT, opLONG_BINGET:
		b, err := m.readN(4)
		if err != nil {
			return 0, err
		}
		idx = int64(binary.LittleEndian.Uint32(b))
	default:
		s, _, err := m.line(maxNameLine)
		if err != nil {
			return 0, err
		}
		v, perr := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if perr != nil || v < 0 {
			return 0, m.fail("invalid", "memo index %q is not a non-negative integer", shortText(s))
		}
		idx = v
	}
	if idx > m.lim.MaxMemoIndex && (op == opPUT || op == opBINPUT || op == opLONG_BINPUT) {
		m.issue("memoindex", "scan.pickle.limit", SeverityMedium, "memo index %d: CPython's unpickler sizes its memo table by the largest index, so loading this pickle allocates about %d MiB", idx, idx*16>>20)
	}
	return idx, nil
}

// addTo is APPEND(S), SETITEM(S) and ADDITEMS. On a container it adds the
// items; on anything else Python would call the object's append, extend,
// __setitem__ or add method, which only matters for objects whose creation
// was already reported.
func (m *vm) addTo(t value, items []value) {
	if c, ok := t.(*pyContainer); ok {
		m.addItems(c, items)
	}
}

// nameString returns the text of a str used as a module or attribute name.
func nameString(v value) (string, bool) {
	s, ok := v.(*pyStr)
	if !ok {
		return "", false
	}
	return s.s, true
}

// shortText cuts s for an error message.
func shortText(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// parseIntText parses the integer of an INT or LONG opcode. CPython accepts
// what strtol with base 0 accepts, then falls back to int(s, 0).
func parseIntText(s string) (pyInt, bool) {
	s = strings.TrimSpace(s)
	if v, err := strconv.ParseInt(s, 0, 64); err == nil {
		return pyInt{v: v}, true
	}
	var z big.Int
	if _, ok := z.SetString(s, 0); ok {
		t := z.String()
		if len(t) > 64 {
			t = t[:64] + "…"
		}
		return pyInt{big: t}, true
	}
	return pyInt{}, false
}

// longValue decodes a LONG1/LONG4 little-endian two's complement integer,
// of which at most the first 64 bytes were kept.
func longValue(b []byte, n int64) pyInt {
	if n > int64(len(b)) {
		return pyInt{big: fmt.Sprintf("<%d-byte integer>", n)}
	}
	if n == 0 {
		return pyInt{}
	}
	if n <= 8 {
		var u uint64
		for i := len(b) - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		shift := 64 - 8*uint(n)
		return pyInt{v: int64(u<<shift) >> shift}
	}
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	var z big.Int
	z.SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		var mod big.Int
		mod.Lsh(big.NewInt(1), uint(8*len(b)))
		z.Sub(&z, &mod)
	}
	return pyInt{big: z.String()}
}

// decodeEscapes decodes the body of a protocol 0 STRING, written with
// Python's repr escapes.
func decodeEscapes(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case '\n':
		case 'x':
			if i+2 < len(s) {
				if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
					b.WriteByte(byte(v))
					i += 2
					continue
				}
			}
			b.WriteString(`\x`)
		case '0', '1', '2', '3', '4', '5', '6', '7':
			j := i
			for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			v, _ := strconv.ParseUint(s[i:j], 8, 16)
			b.WriteByte(byte(v))
			i = j - 1
		default:
			b.WriteByte(e)
		}
	}
	return b.String()
}

// decodeRawUnicodeEscape decodes protocol 0 UNICODE: \uXXXX and \UXXXXXXXX
// escapes, every other byte taken as Latin-1.
func decodeRawUnicodeEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
			n := 4
			if s[i+1] == 'U' {
				n = 8
			}
			if i+2+n <= len(s) {
				if v, err := strconv.ParseUint(s[i+2:i+2+n], 16, 32); err == nil {
					b.WriteRune(rune(v))
					i += 1 + n
					continue
				}
			}
		}
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}
