package data

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Source formats, as DatasetInfo.Format reports them.
const (
	FormatIDX         = "idx"
	FormatNPZ         = "npz"
	FormatCSV         = "csv"
	FormatImageFolder = "image-folder"
)

// ErrSingleSplit is wrapped by Load when a split was asked of a source that
// has only one (a CSV file, a plain image folder, an npz without _train and
// _test arrays); ask for split "" and hold examples out with SplitFraction.
var ErrSingleSplit = errors.New("the source has a single split: load it with split \"\" and hold out examples with SplitFraction")

// source is a resolved dataset: what Load and Info work from.
type source struct {
	name    string   // Dataset.Name: the dataset's name or the path as given
	format  string   // one of the Format constants
	path    string   // absolute file or folder
	classes []string // fixed class names of a named dataset, else nil
}

// resolve decides what nameOrPath is. A known name (fashion-mnist, mnist)
// always means the named dataset; write ./mnist for a local folder of that
// name.
func resolve(nameOrPath string) (*source, error) {
	if nd, ok := namedDatasets[nameOrPath]; ok {
		dir, err := namedFolder(nameOrPath)
		if err != nil {
			return nil, err
		}
		return &source{name: nameOrPath, format: FormatIDX, path: dir, classes: nd.classes}, nil
	}
	if nameOrPath == "" {
		return nil, fmt.Errorf("no dataset given: name one of %s, or give a path", strings.Join(NamedDatasets(), ", "))
	}
	st, err := os.Stat(nameOrPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: no such file or folder, and not a named dataset (%s)", nameOrPath, strings.Join(NamedDatasets(), ", "))
	}
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(nameOrPath)
	if err != nil {
		return nil, err
	}
	s := &source{name: nameOrPath, path: abs}
	if st.IsDir() {
		entries, err := os.ReadDir(abs)
		if err != nil {
			return nil, err
		}
		s.format = FormatImageFolder
		if isIDXFolder(abs, entries) {
			s.format = FormatIDX
		}
		return s, nil
	}
	switch strings.ToLower(filepath.Ext(abs)) {
	case ".npz":
		s.format = FormatNPZ
	case ".csv":
		s.format = FormatCSV
	default:
		return nil, fmt.Errorf("%s: unsupported file type %q: want a .npz or .csv file, a folder of IDX files, or a folder of class folders of PNG/JPEG images", nameOrPath, filepath.Ext(abs))
	}
	return s, nil
}

func (s *source) load(split string) (*Dataset, error) {
	switch split {
	case "", "train", "test":
	default:
		return nil, fmt.Errorf("%s: unknown split %q: want \"train\", \"test\", or \"\" for the default", s.name, split)
	}
	switch s.format {
	case FormatIDX:
		return loadIDXFolder(s.name, s.path, split, s.classes)
	case FormatNPZ:
		return loadNPZ(s.name, s.path, split)
	case FormatCSV:
		return loadCSV(s.name, s.path, split)
	default:
		return loadImageFolder(s.name, s.path, split)
	}
}

// splits lists the splits the source has; "" alone for single-split ones.
func (s *source) splits() ([]string, error) {
	switch s.format {
	case FormatIDX:
		return idxSplits(s.path)
	case FormatNPZ:
		f, err := os.Open(s.path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		z, err := openNPZ(f, st.Size())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.path, err)
		}
		if !z.has("x_train") || !z.has("y_train") {
			return []string{""}, nil
		}
		if z.has("x_test") || z.has("y_test") {
			return []string{"train", "test"}, nil
		}
		return []string{"train"}, nil
	case FormatCSV:
		return []string{""}, nil
	default:
		return imageFolderSplits(s.path), nil
	}
}

// Load resolves nameOrPath and returns the requested split: "train" or
// "test", or "" for the default, which is "train" for named datasets, IDX
// folders and other sources with splits, and the whole source for
// single-split ones (a CSV file, an npz without x_train, an image folder
// without train/ and test/).
//
// nameOrPath is a named dataset (fashion-mnist or mnist, looked for in
// $BULWARK_DATA/<name>, else /usr/share/datasets/<name>), a folder of IDX
// files (train-*, t10k-* or test-*, gzipped or not), an .npz file, a .csv
// file, or a folder of class folders of PNG/JPEG images.
//
// Classes are fixed for named datasets, the class folder names (sorted)
// for image folders, the distinct label texts (sorted) for CSV files with
// non-numeric labels, and "0".."K-1" otherwise, K being one more than the
// largest label.
//
// The fingerprint is the sha256 of the bytes of every file read, in name
// order, followed by the split name: for an IDX split it equals
// `(cat t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; printf test) | sha256sum`.
// For image folders each file's bytes are preceded by its path relative to
// the split folder and a NUL byte, because there the path is the label:
// moving a file to another class must change the fingerprint.
func Load(nameOrPath, split string) (*Dataset, error) {
	s, err := resolve(nameOrPath)
	if err != nil {
		return nil, err
	}
	return s.load(split)
}

// DatasetInfo describes a dataset and its splits.
type DatasetInfo struct {
	Name    string      `json:"name"`
	Source  string      `json:"source"` // the resolved file or folder
	Format  string      `json:"format"` // idx, npz, csv or image-folder
	Shape   []int       `json:"shape"`  // of one example
	Layout  string      `json:"layout"`
	Scale   float32     `json:"scale"`
	Classes []string    `json:"classes"`
	Splits  []SplitInfo `json:"splits"`
}

// SplitInfo describes one split.
type SplitInfo struct {
	Name        string `json:"name"` // "train", "test", or "" for single-split sources
	Examples    int    `json:"examples"`
	Source      string `json:"source"` // path(s) read
	Fingerprint string `json:"fingerprint"`
	ClassCounts []int  `json:"class_counts"` // examples per class, indexed like Classes
}

// Info describes a dataset without keeping it: each split is loaded in
// turn, summarized and dropped, so the fingerprints and counts are exactly
// those Load gives.
func Info(nameOrPath string) (*DatasetInfo, error) {
	s, err := resolve(nameOrPath)
	if err != nil {
		return nil, err
	}
	splits, err := s.splits()
	if err != nil {
		return nil, err
	}
	if len(splits) == 0 {
		return nil, fmt.Errorf("%s: no splits found", s.path)
	}
	info := &DatasetInfo{Name: s.name, Source: s.path, Format: s.format}
	for _, split := range splits {
		d, err := s.load(split)
		if err != nil {
			return nil, err
		}
		if info.Shape == nil {
			info.Shape, info.Layout, info.Scale = d.Shape, d.Preprocess.Layout, d.Preprocess.Scale
		} else if !slices.Equal(info.Shape, d.Shape) {
			return nil, fmt.Errorf("%s: %s examples have shape %v but %s examples have %v", s.name, splits[0], info.Shape, split, d.Shape)
		}
		// Splits numbered separately can see different largest labels;
		// the longer list names every class of both.
		if len(d.Classes) > len(info.Classes) {
			info.Classes = d.Classes
		}
		counts := make([]int, d.NumClasses())
		for _, y := range d.Y {
			counts[y]++
		}
		info.Splits = append(info.Splits, SplitInfo{
			Name:        d.Split,
			Examples:    d.Len(),
			Source:      d.Source,
			Fingerprint: d.Fingerprint,
			ClassCounts: counts,
		})
	}
	return info, nil
}
