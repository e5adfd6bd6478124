package data

import (
	"archive/zip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// npzFile is an opened .npz archive (a zip of .npy files, as numpy's savez
// and savez_compressed write it), indexed by key: the entry name without
// ".npy".
type npzFile struct {
	size    int64
	entries map[string]*zip.File
	keys    []string // sorted, for error messages
	budget  int64    // decompressed bytes still allowed from this archive
}

// openNPZ reads the archive's directory. Nothing is decompressed yet.
func openNPZ(r io.ReaderAt, size int64) (*npzFile, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("not a valid npz file (npz files are zip archives): %w", err)
	}
	z := &npzFile{size: size, entries: map[string]*zip.File{}, budget: MaxDecodedBytes}
	for _, f := range zr.File {
		key, ok := strings.CutSuffix(f.Name, ".npy")
		if !ok {
			continue // numpy ignores non-.npy members too
		}
		if _, dup := z.entries[key]; dup {
			return nil, fmt.Errorf("entry %q appears twice, so which one is meant is ambiguous", f.Name)
		}
		z.entries[key] = f
		z.keys = append(z.keys, key)
	}
	slices.Sort(z.keys)
	return z, nil
}

func (z *npzFile) has(key string) bool { return z.entries[key] != nil }

// read decompresses and decodes one entry. The sizes in the zip directory
// are untrusted: the compressed size must fit in the archive, the
// uncompressed size must be one DEFLATE could produce from it (which
// defeats zip bombs that promise little and inflate to gigabytes, and
// bounds what we allocate by the archive's length), and the total stays
// under MaxDecodedBytes. archive/zip itself refuses an entry that inflates
// to more than its header says.
func (z *npzFile) read(key string) (*array, error) {
	f := z.entries[key]
	if f == nil {
		return nil, fmt.Errorf("no entry %q", key+".npy")
	}
	c, u := f.CompressedSize64, f.UncompressedSize64
	switch {
	case f.Method != zip.Store && f.Method != zip.Deflate:
		return nil, fmt.Errorf("%s: compression method %d is not supported (numpy writes stored or deflated entries)", f.Name, f.Method)
	case c > uint64(z.size):
		return nil, fmt.Errorf("%s: entry claims %d compressed bytes but the whole archive has %d", f.Name, c, z.size)
	case f.Method == zip.Store && u != c:
		return nil, fmt.Errorf("%s: stored entry claims %d bytes uncompressed but %d stored", f.Name, u, c)
	case u > uint64(maxInflated(int64(c))):
		return nil, fmt.Errorf("%s: entry claims %d bytes uncompressed from %d compressed, more than DEFLATE can produce (a zip bomb or a corrupt archive)", f.Name, u, c)
	case int64(u) > z.budget:
		return nil, fmt.Errorf("%s: entry of %d bytes would take the archive past the limit of %d decompressed bytes", f.Name, u, MaxDecodedBytes)
	}
	z.budget -= int64(u)
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	defer rc.Close()
	a, err := decodeNPY(rc, int64(u))
	switch {
	case err == nil:
		return a, nil
	case errors.Is(err, zip.ErrChecksum):
		return nil, fmt.Errorf("%s: corrupt entry: checksum mismatch", f.Name)
	case errors.Is(err, zip.ErrFormat):
		return nil, fmt.Errorf("%s: corrupt entry: it holds more data than its header declares", f.Name)
	}
	return nil, fmt.Errorf("%s: %w", f.Name, err)
}

// npzPairs are the (inputs, labels) key pairs of single-split archives, in
// order of preference.
var npzPairs = [][2]string{{"x", "y"}, {"images", "labels"}, {"features", "labels"}}

// splitKeys picks the entries holding split. Archives with x_train/y_train
// (Keras' layout) have splits; otherwise one pair holds everything.
func (z *npzFile) splitKeys(split string) (xKey, yKey, resolved string, err error) {
	if z.has("x_train") && z.has("y_train") {
		if split == "" {
			split = "train"
		}
		x, y := "x_"+split, "y_"+split
		if !z.has(x) || !z.has(y) {
			return "", "", "", fmt.Errorf("no %s split: want entries %s and %s (found %s)", split, x, y, strings.Join(z.keys, ", "))
		}
		return x, y, split, nil
	}
	for _, p := range npzPairs {
		if z.has(p[0]) && z.has(p[1]) {
			if split != "" {
				return "", "", "", fmt.Errorf("has a single split (entries %s, %s), not %q: %w", p[0], p[1], split, ErrSingleSplit)
			}
			return p[0], p[1], "", nil
		}
	}
	return "", "", "", fmt.Errorf("no inputs and labels found: want entries x and y, images and labels, features and labels, or x_train, y_train, x_test, y_test; found %q", z.keys)
}

// loadNPZ loads one split of an .npz file.
func loadNPZ(name, path, split string) (*Dataset, error) {
	f, err := os.Open(path)
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
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	xKey, yKey, split, err := z.splitKeys(split)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	xa, err := z.read(xKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	x, shape, pre, err := xa.inputs()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", path, xKey, err)
	}
	xa = nil // let the raw bytes go before decoding labels
	ya, err := z.read(yKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	y, maxLabel, err := ya.labels()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", path, yKey, err)
	}
	per, _ := product(shape, MaxValues)
	if n := len(x) / int(per); n != len(y) {
		return nil, fmt.Errorf("%s: %s has %d examples but %s has %d labels", path, xKey, n, yKey, len(y))
	}
	// Both splits share one file, so number the classes over both: label i
	// then means the same class, and has the same NumClasses, in each.
	if split != "" {
		other := "y_test"
		if split == "test" {
			other = "y_train"
		}
		if z.has(other) {
			oa, err := z.read(other)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			_, m, err := oa.labels()
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", path, other, err)
			}
			maxLabel = max(maxLabel, m)
		}
	}

	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, st.Size())); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Dataset{
		Name:        name,
		Source:      path,
		Split:       split,
		X:           x,
		Shape:       shape,
		Y:           y,
		Classes:     numberedClasses(maxLabel + 1),
		Fingerprint: fingerprint(h, split),
		Preprocess:  pre,
	}, nil
}
