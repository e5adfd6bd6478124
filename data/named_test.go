package data

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const debianFashion = "/usr/share/datasets/fashion-mnist"

// readGz returns the decompressed bytes of a gzip file.
func readGz(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFashionMNISTDebian(t *testing.T) {
	if _, err := os.Stat(debianFashion); err != nil {
		t.Skip("Debian package dataset-fashion-mnist not installed")
	}
	t.Setenv(DataEnv, "")

	train, err := Load("fashion-mnist", "")
	if err != nil {
		t.Fatal(err)
	}
	if train.Split != "train" || train.Len() != 60000 || len(train.X) != 60000*784 {
		t.Fatalf("default split %q has %d examples, %d values; want train, 60000, %d", train.Split, train.Len(), len(train.X), 60000*784)
	}
	test, err := Load("fashion-mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	if test.Len() != 10000 || test.Name != "fashion-mnist" || test.Split != "test" {
		t.Fatalf("test split: %d examples, name %q, split %q", test.Len(), test.Name, test.Split)
	}
	for _, d := range []*Dataset{train, test} {
		if !slices.Equal(d.Shape, []int{1, 28, 28}) {
			t.Fatalf("shape %v, want [1 28 28]", d.Shape)
		}
		if d.Preprocess != (Preprocess{Scale: 1.0 / 255, Layout: LayoutNCHW}) {
			t.Fatalf("preprocess %+v", d.Preprocess)
		}
		if d.NumClasses() != 10 || d.Classes[0] != "T-shirt/top" || d.Classes[9] != "Ankle boot" {
			t.Fatalf("classes %q", d.Classes)
		}
		lo, hi := slices.Min(d.X), slices.Max(d.X)
		if lo != 0 || hi != 1 {
			t.Fatalf("values span [%v,%v], want exactly [0,1]", lo, hi)
		}
		if err := d.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if train.Fingerprint == test.Fingerprint {
		t.Fatal("train and test have the same fingerprint")
	}

	// The test split has 1000 examples of each class.
	hist := make([]int, 10)
	for _, y := range test.Y {
		hist[y]++
	}
	for c, n := range hist {
		if n != 1000 {
			t.Fatalf("class %d has %d test examples, want 1000 (histogram %v)", c, n, hist)
		}
	}

	// Pixels and labels match the raw files: the brightest pixel of test
	// example 3, and the first 1000 labels.
	raw := readGz(t, filepath.Join(debianFashion, "t10k-images-idx3-ubyte.gz"))
	pixels := raw[16:]
	ex := pixels[3*784 : 4*784]
	at := bytes.IndexByte(ex, slices.Max(ex))
	if got, want := test.Example(3)[at], float32(ex[at])/255; got != want || ex[at] == 0 {
		t.Fatalf("example 3 pixel %d = %v, want %v (raw %d)", at, got, want, ex[at])
	}
	if got, want := test.X[123456], float32(pixels[123456])/255; got != want {
		t.Fatalf("X[123456] = %v, want %v", got, want)
	}
	labels := readGz(t, filepath.Join(debianFashion, "t10k-labels-idx1-ubyte.gz"))[8:]
	for i := 0; i < 1000; i++ {
		if test.Y[i] != int(labels[i]) {
			t.Fatalf("label %d = %d, want %d", i, test.Y[i], labels[i])
		}
	}

	// The fingerprint is sha256 of the files in name order plus the split:
	// cat t10k-images... t10k-labels...; printf test | sha256sum
	h := sha256.New()
	for _, f := range []string{"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"} {
		b, err := os.ReadFile(filepath.Join(debianFashion, f))
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	h.Write([]byte("test"))
	if want := "sha256:" + hex.EncodeToString(h.Sum(nil)); test.Fingerprint != want {
		t.Fatalf("fingerprint %s, want %s", test.Fingerprint, want)
	}

	info, err := Info("fashion-mnist")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Splits) != 2 || info.Splits[0].Examples != 60000 || info.Splits[1].Examples != 10000 ||
		info.Splits[1].Fingerprint != test.Fingerprint || info.Format != FormatIDX || info.Source != debianFashion {
		t.Fatalf("info %+v", info)
	}
}

func TestNamedMissingFolder(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(DataEnv, dir)
	_, err := Load("fashion-mnist", "")
	wantErr(t, err, filepath.Join(dir, "fashion-mnist"), "not found", "BULWARK_DATA", "dataset-fashion-mnist")
	_, err = Info("mnist")
	wantErr(t, err, filepath.Join(dir, "mnist"), "not found")

	// Without BULWARK_DATA the error points at the Debian package.
	t.Setenv(DataEnv, "")
	if _, statErr := os.Stat(filepath.Join(DefaultDataDir, "mnist")); statErr == nil {
		t.Skip("mnist is installed here")
	}
	_, err = Load("mnist", "")
	wantErr(t, err, filepath.Join(DefaultDataDir, "mnist"), "BULWARK_DATA")
}

func TestNamedFromDataEnv(t *testing.T) {
	root := t.TempDir()
	t.Setenv(DataEnv, root)
	dir := filepath.Join(root, "mnist")
	writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte.gz"), gzipBytes(idxFile(0x08, []int{3, 2, 2}, seq(12))))
	writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte.gz"), gzipBytes(idxFile(0x08, []int{3}, []byte{9, 0, 4})))
	d, err := Load("mnist", "")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "mnist" || d.Len() != 3 || !slices.Equal(d.Classes, numberedClasses(10)) || !slices.Equal(d.Y, []int{9, 0, 4}) {
		t.Fatalf("got %s with %d examples, classes %q, labels %v", d.Name, d.Len(), d.Classes, d.Y)
	}
	// A named dataset has fixed classes: a label past them is an error.
	writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte.gz"), gzipBytes(idxFile(0x08, []int{3}, []byte{9, 10, 4})))
	_, err = Load("mnist", "train")
	wantErr(t, err, "train-labels-idx1-ubyte.gz", "label 1 is 10", "10 classes")
}

func TestUnknownSource(t *testing.T) {
	_, err := Load("fashion-mnst", "")
	wantErr(t, err, "fashion-mnst", "no such file or folder", "fashion-mnist")
	p := writeFile(t, filepath.Join(t.TempDir(), "data.parquet"), []byte("x"))
	_, err = Load(p, "")
	wantErr(t, err, "data.parquet", "unsupported file type")
	_, err = Load(debianFashion, "validation")
	wantErr(t, err, "unknown split")
}
