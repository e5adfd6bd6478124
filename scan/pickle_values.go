package scan

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The pickle VM computes with symbolic values: the constants the stream
// pushes, the containers it builds, and stand-ins for whatever a call would
// return (pyCall). Nothing is ever imported or called; a pyCall only records
// which callable would run with which arguments, which is enough to resolve
// chains such as getattr(__import__("os"), "system")("...").
type value any

type pyNone struct{}

type pyBool bool

// pyInt is an integer. Integers beyond int64 keep their decimal text only
// (cut for very long ones): nothing in the analysis computes with them.
type pyInt struct {
	v   int64
	big string
}

type pyFloat float64

// pyStr is a str. The content is kept whole up to a limit per string and a
// budget per pickle (see Limits); n is the full length in bytes and src the
// offset of the raw bytes in the stream when they appear there verbatim,
// so that an embedded payload can be re-read without keeping it in memory.
type pyStr struct {
	s     string
	n     int64
	src   int64
	whole bool
}

// pyBytes is bytes or a bytearray, held the same way as pyStr; most of the
// time only a prefix is kept for display.
type pyBytes struct {
	b     []byte
	n     int64
	src   int64
	whole bool
	array bool
}

// Container kinds.
const (
	kindTuple = iota
	kindList
	kindDict
	kindSet
	kindFrozenSet
)

// pyContainer is a tuple, list, dict (items alternate key, value), set or
// frozenset. It keeps at most maxItemsKept items: no pickle opcode reads an
// item back out of a container, so the rest only matter as counts, and
// calls among them were reported when they were made.
type pyContainer struct {
	kind  int
	items []value
	// n is the number of items added (key/value pairs count 2).
	n int64
	// size is the number of values the container stands for when shared
	// references are expanded, saturating; depth is its nesting depth.
	size  int64
	depth int
}

// maxItemsKept bounds each container's kept items.
const maxItemsKept = 256

// pyGlobal is an imported callable, class or module. dynamic marks one whose
// module or name was not a literal string, so that it cannot be resolved.
type pyGlobal struct {
	module, name string
	path         string // normalized "module.name"
	dynamic      bool
}

// pyCall stands for the result of calling fn with args (a tuple) and kwargs.
type pyCall struct {
	fn, args, kwargs value
	op               string
	off              int64
}

// pyPersID is the object the loader's persistent_load returns for pid.
type pyPersID struct{ pid value }

// pyBuffer is an out-of-band buffer (protocol 5).
type pyBuffer struct{}

func sizeOf(v value) int64 {
	if c, ok := v.(*pyContainer); ok {
		return c.size
	}
	return 1
}

func depthOf(v value) int {
	if c, ok := v.(*pyContainer); ok {
		return c.depth
	}
	return 0
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// tupleItems returns the kept items of a tuple (or list), nil otherwise.
func tupleItems(v value) []value {
	if c, ok := v.(*pyContainer); ok && (c.kind == kindTuple || c.kind == kindList) {
		return c.items
	}
	return nil
}

// strLit returns the content of a str (or a py2 byte string) that was kept
// whole.
func strLit(v value) (string, bool) {
	switch x := v.(type) {
	case *pyStr:
		return x.s, x.whole
	case *pyBytes:
		return string(x.b), x.whole
	}
	return "", false
}

// truthy reports whether v is a literal that Python would treat as true.
func truthy(v value) bool {
	switch x := v.(type) {
	case pyBool:
		return bool(x)
	case pyInt:
		return x.v != 0 || x.big != ""
	}
	return false
}

// maxRender is the length past which rendered arguments are cut.
const maxRender = 240

// render writes v the way Python's repr would, shortened: it is what a
// finding shows as the arguments of a call.
func render(v value) string {
	var b strings.Builder
	renderTo(&b, v, 0)
	s := b.String()
	if len(s) > maxRender {
		cut := maxRender
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func renderTo(b *strings.Builder, v value, depth int) {
	if b.Len() > maxRender {
		return
	}
	if depth > 6 {
		b.WriteString("…")
		return
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("?")
	case pyNone:
		b.WriteString("None")
	case pyBool:
		if x {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case pyInt:
		if x.big != "" {
			b.WriteString(x.big)
		} else {
			b.WriteString(strconv.FormatInt(x.v, 10))
		}
	case pyFloat:
		b.WriteString(strconv.FormatFloat(float64(x), 'g', -1, 64))
	case *pyStr:
		b.WriteString(quote(x.s, 120))
		if !x.whole {
			fmt.Fprintf(b, "…(%d bytes)", x.n)
		}
	case *pyBytes:
		if x.array {
			b.WriteString("bytearray(")
		}
		b.WriteString("b")
		b.WriteString(quote(string(x.b), 48))
		if !x.whole || len(x.b) > 48 {
			fmt.Fprintf(b, "…(%d bytes)", x.n)
		}
		if x.array {
			b.WriteString(")")
		}
	case *pyContainer:
		renderContainer(b, x, depth)
	case *pyGlobal:
		if x.dynamic {
			b.WriteString("<dynamic global>")
		} else {
			b.WriteString(x.module + "." + x.name)
		}
	case *pyCall:
		renderTo(b, x.fn, depth+1)
		b.WriteString("(")
		for i, a := range tupleItems(x.args) {
			if i > 0 {
				b.WriteString(", ")
			}
			renderTo(b, a, depth+1)
		}
		if c, ok := x.kwargs.(*pyContainer); ok && c.kind == kindDict {
			for i := 0; i+1 < len(c.items); i += 2 {
				if i > 0 || len(tupleItems(x.args)) > 0 {
					b.WriteString(", ")
				}
				if k, ok := strLit(c.items[i]); ok {
					b.WriteString(k)
				} else {
					renderTo(b, c.items[i], depth+1)
				}
				b.WriteString("=")
				renderTo(b, c.items[i+1], depth+1)
			}
		}
		b.WriteString(")")
	case *pyPersID:
		b.WriteString("persistent_load(")
		renderTo(b, x.pid, depth+1)
		b.WriteString(")")
	case pyBuffer:
		b.WriteString("<out-of-band buffer>")
	default:
		fmt.Fprintf(b, "<%T>", v)
	}
}

func renderContainer(b *strings.Builder, c *pyContainer, depth int) {
	open, close := "(", ")"
	switch c.kind {
	case kindList:
		open, close = "[", "]"
	case kindDict, kindSet:
		open, close = "{", "}"
	case kindFrozenSet:
		open, close = "frozenset({", "})"
	}
	b.WriteString(open)
	if c.kind == kindDict {
		for i := 0; i+1 < len(c.items); i += 2 {
			if i > 0 {
				b.WriteString(", ")
			}
			renderTo(b, c.items[i], depth+1)
			b.WriteString(": ")
			renderTo(b, c.items[i+1], depth+1)
			if b.Len() > maxRender {
				break
			}
		}
	} else {
		for i, it := range c.items {
			if i > 0 {
				b.WriteString(", ")
			}
			renderTo(b, it, depth+1)
			if b.Len() > maxRender {
				break
			}
		}
		if c.kind == kindTuple && c.n == 1 {
			b.WriteString(",")
		}
	}
	if int64(len(c.items)) < c.n {
		fmt.Fprintf(b, ", …%d more", c.n-int64(len(c.items)))
	}
	b.WriteString(close)
}

// renderArgs renders a call's arguments as "(a, b, key=c)".
func renderArgs(args, kwargs value) string {
	var b strings.Builder
	b.WriteString("(")
	items := tupleItems(args)
	if items == nil && args != nil {
		if _, isTuple := args.(*pyContainer); !isTuple {
			// REDUCE with something other than a tuple: Python would
			// refuse it, but show what it is.
			b.WriteString("*")
			renderTo(&b, args, 1)
		}
	}
	for i, a := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		renderTo(&b, a, 1)
	}
	if c, ok := args.(*pyContainer); ok && int64(len(c.items)) < c.n {
		fmt.Fprintf(&b, ", …%d more", c.n-int64(len(c.items)))
	}
	if c, ok := kwargs.(*pyContainer); ok && c.kind == kindDict {
		for i := 0; i+1 < len(c.items); i += 2 {
			if i > 0 || len(items) > 0 {
				b.WriteString(", ")
			}
			if k, ok := strLit(c.items[i]); ok {
				b.WriteString(k)
			} else {
				renderTo(&b, c.items[i], 1)
			}
			b.WriteString("=")
			renderTo(&b, c.items[i+1], 1)
		}
	}
	b.WriteString(")")
	s := b.String()
	if len(s) > maxRender {
		cut := maxRender
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// quote quotes s like Go (close enough to Python for a reader), cut to max
// bytes first.
func quote(s string, max int) string {
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return strconv.Quote(s)
}
