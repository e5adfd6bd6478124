// Package model loads classifiers from files and exposes them to the rest of
// bulwark through one type, whatever their origin: a native bulwark model
// (.safetensors with its graph in the metadata) or an ONNX file exported
// from PyTorch or another framework. Pickle-based files are never loaded.
package model

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/model/onnx"
	"github.com/bulwark-sec/bulwark/nn"
)

// Model is a loaded classifier.
type Model struct {
	Path   string
	Format string // "native" or "onnx"
	Net    engine.Net
	Meta   Meta
	// OutputIsProbabilities says the graph ends in softmax or sigmoid (an
	// ONNX export may), so its outputs are not logits.
	OutputIsProbabilities bool
	Checkpoint            *Checkpoint
}

// ErrPickle is returned for files whose format runs code when loaded.
type ErrPickle struct{ Path, Why string }

func (e *ErrPickle) Error() string {
	return fmt.Sprintf("%s: %s; bulwark never unpickles a file, because unpickling runs whatever code the file's author put in it. "+
		"Export the model to ONNX (torch.onnx.export) or safetensors, and use `bulwark scan` to inspect this file", e.Path, e.Why)
}

// pickleZipMagic and friends identify PyTorch and pickle files by content,
// so renaming a file does not get it loaded.
var (
	zipMagic = []byte("PK\x03\x04")
)

// Load reads a model file, choosing the loader by extension and checking the
// content agrees. engineKind selects the engine ("" for the default).
func Load(path, engineKind string) (*Model, error) {
	ext := strings.ToLower(filepath.Ext(path))
	head, err := readHead(path, 16)
	if err != nil {
		return nil, err
	}
	switch ext {
	case ".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".joblib", ".dill":
		return nil, &ErrPickle{Path: path, Why: fmt.Sprintf("%s files are Python pickles (or zip archives of pickles)", ext)}
	}
	if looksLikePickle(head) {
		return nil, &ErrPickle{Path: path, Why: "the file is a Python pickle"}
	}
	switch ext {
	case ".safetensors":
		if bytes.HasPrefix(head, zipMagic) {
			return nil, &ErrPickle{Path: path, Why: "the file is named .safetensors but is a zip archive (the layout of PyTorch's pickle-based format)"}
		}
		g, meta, ck, err := LoadNative(path)
		if err != nil {
			return nil, err
		}
		net, err := engine.New(g, engineKind)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &Model{Path: path, Format: "native", Net: net, Meta: meta, Checkpoint: ck}, nil
	case ".onnx":
		om, err := onnx.Load(path)
		if err != nil {
			return nil, err
		}
		net, err := engine.New(om.Graph, engineKind)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		classes := make([]string, net.NumClasses())
		for i := range classes {
			classes[i] = fmt.Sprint(i)
		}
		layout := om.Layout
		if layout == "" {
			layout = "NCHW"
		}
		meta := Meta{
			Format:     "onnx",
			Arch:       "onnx:" + om.Producer,
			InputShape: om.InputShape,
			Classes:    classes,
			// ONNX carries no preprocessing; bulwark assumes inputs in [0, 1],
			// the convention of its datasets.
			Preprocess: Preprocess{Scale: 1, Layout: layout, Range: &[2]float32{0, 1}},
		}
		return &Model{Path: path, Format: "onnx", Net: net, Meta: meta, OutputIsProbabilities: om.OutputIsProbabilities}, nil
	}
	return nil, fmt.Errorf("%s: unknown model format %q (bulwark reads .safetensors models it trained and .onnx)", path, ext)
}

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: is a folder, not a model file", path)
	}
	b := make([]byte, n)
	k, _ := f.Read(b)
	return b[:k], nil
}

// looksLikePickle recognises the start of a pickle stream: the PROTO opcode
// (0x80) followed by a protocol number 2..5.
func looksLikePickle(head []byte) bool {
	return len(head) >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5
}

// Classes returns the class names, numbering them if the metadata has none.
func (m *Model) Classes() []string {
	if len(m.Meta.Classes) == m.Net.NumClasses() {
		return m.Meta.Classes
	}
	out := make([]string, m.Net.NumClasses())
	for i := range out {
		out[i] = fmt.Sprint(i)
	}
	return out
}

// CheckInput reports whether examples of the given shape fit the model. A
// shape fits when it is the model's up to axes of size 1 ([28, 28] feeds
// [1, 28, 28]), or when either side is flat and the sizes agree (an MLP
// exported with a [784] input takes [1, 28, 28] images, row-major).
func (m *Model) CheckInput(shape []int) error {
	in := m.Net.Graph().InputShape
	if nn.Numel(shape) == nn.Numel(in) {
		if len(shape) == 1 || len(in) == 1 || slices.Equal(squeeze(shape), squeeze(in)) {
			return nil
		}
	}
	return fmt.Errorf("the model takes examples of shape %v, the data has %v", in, shape)
}

func squeeze(s []int) []int {
	var out []int
	for _, d := range s {
		if d != 1 {
			out = append(out, d)
		}
	}
	return out
}
