// Package data loads datasets for training and evaluating image and tabular
// classifiers: named datasets (fashion-mnist, mnist), folders of IDX files,
// .npz archives, .csv files and folders of PNG/JPEG images, each into one
// in-memory Dataset per split.
//
// Everything read is untrusted. Sizes declared inside files are checked
// against the files' real lengths (and the limits in limits.go) before
// anything is allocated, pickled numpy arrays are refused rather than
// loaded, and every error names the file and what is wrong with it.
package data

import (
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
)

// Layouts of Preprocess.Layout.
const (
	LayoutNCHW     = "NCHW"     // images: channels, height, width
	LayoutFeatures = "features" // tabular: one flat feature vector
)

// Dataset is one split of a dataset, in memory, ready for a model.
type Dataset struct {
	Name        string    // "fashion-mnist", or the path the user gave
	Source      string    // resolved path(s) read, for reports
	Split       string    // "train", "test", or "" for single-split sources
	X           []float32 // N * prod(Shape) values, example-major
	Shape       []int     // shape of ONE example: [C,H,W] for images (NCHW layout), [F] for features
	Y           []int     // N labels, 0..len(Classes)-1
	Classes     []string  // class names
	Fingerprint string    // "sha256:<hex>" over the raw bytes of every file read (sorted by name) plus the split name; see Load
	Preprocess  Preprocess
}

// Preprocess records how X was made from the raw values in the files, so
// the same can be done to new inputs (LoadImage does it for image files).
type Preprocess struct {
	// Scale is the factor applied to raw values: 1/255 for 8-bit images,
	// 1/65535 for 16-bit ones, 1 for float and tabular data. It is applied
	// as a division by 255 (or 65535), which matches torchvision's ToTensor
	// bit for bit.
	Scale  float32
	Layout string // LayoutNCHW for images, LayoutFeatures for tabular
}

// Len is the number of examples.
func (d *Dataset) Len() int { return len(d.Y) }

// exampleSize is the number of values in one example.
func (d *Dataset) exampleSize() int {
	n := 1
	for _, s := range d.Shape {
		n *= s
	}
	return n
}

// Example returns example i as a view into X. The capacity is clipped so
// an append by the caller cannot overwrite the next example.
func (d *Dataset) Example(i int) []float32 {
	n := d.exampleSize()
	return d.X[i*n : (i+1)*n : (i+1)*n]
}

// NumClasses is the number of classes (not the number present in Y).
func (d *Dataset) NumClasses() int { return len(d.Classes) }

// Subset returns a copy holding the examples idx, in that order. It keeps
// Name, Source, Split, Fingerprint, Classes and Preprocess: the fingerprint
// still names the source the examples came from. It panics if an index is
// out of range, as slice indexing would.
func (d *Dataset) Subset(idx []int) *Dataset {
	n := d.exampleSize()
	s := &Dataset{
		Name:        d.Name,
		Source:      d.Source,
		Split:       d.Split,
		X:           make([]float32, 0, len(idx)*n),
		Shape:       slices.Clone(d.Shape),
		Y:           make([]int, 0, len(idx)),
		Classes:     slices.Clone(d.Classes),
		Fingerprint: d.Fingerprint,
		Preprocess:  d.Preprocess,
	}
	for _, i := range idx {
		if i < 0 || i >= d.Len() {
			panic(fmt.Sprintf("data: Subset index %d out of range [0,%d)", i, d.Len()))
		}
		s.X = append(s.X, d.Example(i)...)
		s.Y = append(s.Y, d.Y[i])
	}
	return s
}

// Head returns a copy of the first n examples, or of all of them if n <= 0
// or n >= Len.
func (d *Dataset) Head(n int) *Dataset {
	if n <= 0 || n > d.Len() {
		n = d.Len()
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return d.Subset(idx)
}

// SplitFraction deterministically splits d into (rest, held), where held
// has round(frac*N) examples chosen by a permutation from math/rand/v2's
// PCG seeded with (seed, seed). The same seed always gives the same split.
// Both parts keep the original order of their examples, so only membership
// depends on the permutation. frac is clamped to [0,1]; NaN counts as 0.
func SplitFraction(d *Dataset, frac float64, seed uint64) (rest, held *Dataset) {
	if !(frac > 0) {
		frac = 0
	}
	frac = min(frac, 1)
	n := d.Len()
	k := int(math.Round(frac * float64(n)))
	perm := rand.New(rand.NewPCG(seed, seed)).Perm(n)
	heldIdx := slices.Clone(perm[:k])
	restIdx := slices.Clone(perm[k:])
	slices.Sort(heldIdx)
	slices.Sort(restIdx)
	return d.Subset(restIdx), d.Subset(heldIdx)
}

// Validate reports the first structural problem, non-finite value (naming
// the example and the position within it) or out-of-range label.
func (d *Dataset) Validate() error {
	n := d.exampleSize()
	if len(d.Shape) == 0 || n <= 0 {
		return fmt.Errorf("%s: example shape %v is empty", d.Name, d.Shape)
	}
	if len(d.X) != d.Len()*n {
		return fmt.Errorf("%s: %d values for %d examples of shape %v (want %d)", d.Name, len(d.X), d.Len(), d.Shape, d.Len()*n)
	}
	if len(d.Classes) == 0 {
		return fmt.Errorf("%s: no classes", d.Name)
	}
	for i, v := range d.X {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%s: example %d has %v at position %d", d.Name, i/n, v, i%n)
		}
	}
	for i, y := range d.Y {
		if y < 0 || y >= len(d.Classes) {
			return fmt.Errorf("%s: example %d has label %d, outside 0..%d", d.Name, i, y, len(d.Classes)-1)
		}
	}
	return nil
}

// numberedClasses names k classes "0".."k-1", for sources whose labels
// are bare numbers.
func numberedClasses(k int) []string {
	c := make([]string, k)
	for i := range c {
		c[i] = strconv.Itoa(i)
	}
	return c
}

// fingerprint finishes a hash of the files read by adding the split name,
// so the train and test splits of one file differ.
func fingerprint(h hash.Hash, split string) string {
	h.Write([]byte(split))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
