package data

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// idxSplitPrefixes are the file name prefixes of each split in a folder of
// IDX files: MNIST calls its test files t10k-*, other datasets test-*.
var idxSplitPrefixes = map[string][]string{
	"train": {"train"},
	"test":  {"t10k", "test"},
}

// findIDX returns the images and labels files of split in dir ("" for a
// file that is not there).
func findIDX(dir string, entries []os.DirEntry, split string) (images, labels string, err error) {
	var imgs, labs []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		for _, p := range idxSplitPrefixes[split] {
			switch {
			case strings.HasPrefix(name, p+"-images"):
				imgs = append(imgs, name)
			case strings.HasPrefix(name, p+"-labels"):
				labs = append(labs, name)
			}
		}
	}
	if images, err = pickIDX(dir, imgs); err != nil {
		return "", "", err
	}
	if labels, err = pickIDX(dir, labs); err != nil {
		return "", "", err
	}
	return images, labels, nil
}

// pickIDX chooses among files that could hold the same array. Having both
// a .gz and its decompressed copy is common (gunzip -k); the .gz is the
// form datasets are distributed in, so it wins, which keeps the
// fingerprint the same whether or not a copy was unpacked.
func pickIDX(dir string, names []string) (string, error) {
	if len(names) > 1 {
		var gz []string
		for _, n := range names {
			if strings.HasSuffix(n, ".gz") {
				gz = append(gz, n)
			}
		}
		if len(gz) == 1 {
			names = gz
		}
	}
	switch len(names) {
	case 0:
		return "", nil
	case 1:
		return filepath.Join(dir, names[0]), nil
	}
	slices.Sort(names)
	return "", fmt.Errorf("%s: several files could hold the same array (%s); remove all but one", dir, strings.Join(names, ", "))
}

// isIDXFolder reports whether dir holds IDX files of some split.
func isIDXFolder(dir string, entries []os.DirEntry) bool {
	for split := range idxSplitPrefixes {
		images, labels, err := findIDX(dir, entries, split)
		if err != nil || images != "" || labels != "" {
			return true
		}
	}
	return false
}

// idxSplits lists the splits whose files are present, for Info.
func idxSplits(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var splits []string
	for _, split := range []string{"train", "test"} {
		images, labels, err := findIDX(dir, entries, split)
		if err != nil {
			return nil, err
		}
		if images != "" || labels != "" {
			splits = append(splits, split)
		}
	}
	return splits, nil
}

// loadIDXFolder loads split ("" means "train") from a folder of IDX files.
// classes are the class names of a named dataset; nil numbers the classes
// 0..max label.
func loadIDXFolder(name, dir, split string, classes []string) (*Dataset, error) {
	if split == "" {
		split = "train"
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	images, labels, err := findIDX(dir, entries, split)
	if err != nil {
		return nil, err
	}
	if images == "" || labels == "" {
		p := idxSplitPrefixes[split]
		return nil, fmt.Errorf("%s: no %s split: want files named %s-images-idx3-ubyte[.gz] and %s-labels-idx1-ubyte[.gz] (found images: %q, labels: %q)",
			dir, split, strings.Join(p, "|"), strings.Join(p, "|"), baseName(images), baseName(labels))
	}

	// Read in name order so the fingerprint is the hash of the files'
	// bytes in that order, which anyone can reproduce with cat.
	h := sha256.New()
	files := []string{images, labels}
	slices.SortFunc(files, func(a, b string) int { return strings.Compare(filepath.Base(a), filepath.Base(b)) })
	arrays := map[string]*array{}
	for _, f := range files {
		a, err := readIDXFile(f, h)
		if err != nil {
			return nil, err
		}
		arrays[f] = a
	}

	x, shape, pre, err := arrays[images].inputs()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", images, err)
	}
	delete(arrays, images)
	y, maxLabel, err := arrays[labels].labels()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", labels, err)
	}
	per, _ := product(shape, MaxValues)
	if n := len(x) / int(per); n != len(y) {
		return nil, fmt.Errorf("%s has %d images but %s has %d labels", images, n, labels, len(y))
	}
	if classes == nil {
		classes = numberedClasses(maxLabel + 1)
	} else if maxLabel >= len(classes) {
		i := slices.Index(y, maxLabel)
		return nil, fmt.Errorf("%s: label %d is %d but %s has %d classes", labels, i, maxLabel, name, len(classes))
	}
	return &Dataset{
		Name:        name,
		Source:      images + ", " + labels,
		Split:       split,
		X:           x,
		Shape:       shape,
		Y:           y,
		Classes:     slices.Clone(classes),
		Fingerprint: fingerprint(h, split),
		Preprocess:  pre,
	}, nil
}

// readIDXFile decodes one IDX file, feeding every byte of it to h.
func readIDXFile(path string, h hash.Hash) (*array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	tee := io.TeeReader(f, h)
	a, err := decodeIDX(tee, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// The decoder stops at the end of the data; hash whatever it left.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// baseName is filepath.Base, except that no file stays "".
func baseName(path string) string {
	if path == "" {
		return ""
	}
	return filepath.Base(path)
}
