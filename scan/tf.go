package scan

import (
	"errors"
	"fmt"
	"sort"
)

// TensorFlow SavedModels are protobufs. The graph of a SavedModel is data,
// but some of its ops read and write files or call back into Python when
// the graph runs, which serving infrastructure does with the permissions
// of the server. The ops are found by walking the wire format along
//
//	SavedModel.meta_graphs(2) → MetaGraphDef.graph_def(2) → GraphDef
//	GraphDef.node(1) → NodeDef.op(2)
//	GraphDef.library(2) → FunctionDefLibrary.function(1) → FunctionDef.node_def(3) → NodeDef.op(2)
//
// and, for a bare frozen GraphDef (.pb), from GraphDef at the top.

// tfOps are the ops reported, with severity and why.
var tfOps = map[string]verdict{
	"ReadFile":                 {sev: SeverityHigh, reason: "reads any file the server can read"},
	"WriteFile":                {sev: SeverityHigh, reason: "writes any file the server can write"},
	"MatchingFiles":            {sev: SeverityHigh, reason: "lists files on the server"},
	"PyFunc":                   {sev: SeverityHigh, reason: "calls a Python function of the loading process"},
	"PyFuncStateless":          {sev: SeverityHigh, reason: "calls a Python function of the loading process"},
	"EagerPyFunc":              {sev: SeverityHigh, reason: "calls a Python function of the loading process"},
	"ImmutableConst":           {sev: SeverityMedium, reason: "memory-maps a file named in the graph"},
	"DebugIdentity":            {sev: SeverityMedium, reason: "writes tensors to files or URLs named in the graph"},
	"DebugIdentityV2":          {sev: SeverityMedium, reason: "writes tensors to files or URLs named in the graph"},
	"DebugIdentityV3":          {sev: SeverityMedium, reason: "writes tensors to files or URLs named in the graph"},
	"CreateSummaryFileWriter":  {sev: SeverityMedium, reason: "writes event files to a folder named in the graph"},
	"TextLineDataset":          {sev: SeverityMedium, reason: "reads files named in the graph"},
	"TFRecordDataset":          {sev: SeverityMedium, reason: "reads files named in the graph"},
	"FixedLengthRecordDataset": {sev: SeverityMedium, reason: "reads files named in the graph"},
	"LoadAndRemapMatrix":       {sev: SeverityMedium, reason: "reads checkpoint files named in the graph"},
}

// tfOpSeen aggregates one op type.
type tfOpSeen struct {
	first int64
	node  string
	count int
}

// errTFLimit stops a walk over a graph with too many nodes.
var errTFLimit = errors.New("too many nodes")

// scanTF scans a SavedModel (saved) or a bare GraphDef. A bare .pb is only
// guessed to be a GraphDef: if it does not decode as one, it is skipped.
func (fsn *fileScan) scanTF(src source, saved bool) bool {
	format := "tf-savedmodel"
	if !saved {
		format = "tf-graph"
	}
	ops := map[string]*tfOpSeen{}
	nodes := 0
	var graph func(start, end int64, depth int) error
	node := func(f pbField) error {
		nodes++
		if nodes > fsn.lim.MaxEntries*10 {
			return errTFLimit
		}
		var op, name string
		err := pbWalk(src.r, f.off, f.off+f.n, func(g pbField) error {
			switch {
			case g.num == 1 && g.typ == wireLen:
				name = pbString(src.r, g, 256)
			case g.num == 2 && g.typ == wireLen:
				op = pbString(src.r, g, 256)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if s := ops[op]; s != nil {
			s.count++
		} else {
			ops[op] = &tfOpSeen{first: f.from, node: name, count: 1}
		}
		return nil
	}
	function := func(f pbField) error {
		return pbWalk(src.r, f.off, f.off+f.n, func(g pbField) error {
			if g.num == 3 && g.typ == wireLen {
				return node(g)
			}
			return nil
		})
	}
	graph = func(start, end int64, depth int) error {
		return pbWalk(src.r, start, end, func(f pbField) error {
			switch {
			case f.num == 1 && f.typ == wireLen:
				return node(f)
			case f.num == 2 && f.typ == wireLen: // library
				return pbWalk(src.r, f.off, f.off+f.n, func(g pbField) error {
					if g.num == 1 && g.typ == wireLen {
						return function(g)
					}
					return nil
				})
			}
			return nil
		})
	}
	var err error
	if saved {
		err = pbWalk(src.r, 0, src.size, func(f pbField) error {
			if f.num != 2 || f.typ != wireLen {
				return nil
			}
			return pbWalk(src.r, f.off, f.off+f.n, func(g pbField) error {
				if g.num == 2 && g.typ == wireLen {
					return graph(g.off, g.off+g.n, 0)
				}
				return nil
			})
		})
	} else {
		err = graph(0, src.size, 0)
		if err != nil || nodes == 0 {
			return false
		}
	}
	if errors.Is(err, errTFLimit) {
		fsn.add(src, format, -1, SeverityMedium, "scan.archive.limit", fmt.Sprintf("graph has more than %d nodes: the rest were not checked", fsn.lim.MaxEntries*10))
	} else if err != nil {
		fsn.unparseable(src, format, -1, err.Error())
	}
	names := make([]string, 0, len(ops))
	for op := range ops {
		names = append(names, op)
	}
	sort.Strings(names)
	for _, op := range names {
		v, ok := tfOps[op]
		if !ok {
			continue
		}
		s := ops[op]
		f := fsn.add(src, format, s.first, v.sev, "scan.tf.dangerous-op",
			fmt.Sprintf("graph op %s (node %q, %d in the graph): %s when the graph runs", op, s.node, s.count, v.reason))
		f.Opcode, f.Name, f.Count = op, s.node, s.count
		f.ATLAS = append([]string(nil), atlasCode...)
	}
	return true
}
