package data

import (
	"bytes"
	"encoding/binary"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeIDXFolder writes a train split (and a test split named t10k-*) of
// n 2x3 images whose pixels are 0,1,2,... and labels i%3.
func writeIDXFolder(t *testing.T, dir string, compress bool, n int) {
	t.Helper()
	enc := func(b []byte) []byte { return b }
	suffix := ""
	if compress {
		enc, suffix = gzipBytes, ".gz"
	}
	labels := make([]byte, n)
	for i := range labels {
		labels[i] = byte(i % 3)
	}
	for _, p := range []string{"train", "t10k"} {
		writeFile(t, filepath.Join(dir, p+"-images-idx3-ubyte"+suffix), enc(idxFile(0x08, []int{n, 2, 3}, seq(n*6))))
		writeFile(t, filepath.Join(dir, p+"-labels-idx1-ubyte"+suffix), enc(idxFile(0x08, []int{n}, labels)))
	}
}

func TestIDXFolderRoundTrip(t *testing.T) {
	for _, compress := range []bool{false, true} {
		dir := t.TempDir()
		writeIDXFolder(t, dir, compress, 5)
		for _, split := range []string{"", "train", "test"} {
			d, err := Load(dir, split)
			if err != nil {
				t.Fatalf("compress=%v split %q: %v", compress, split, err)
			}
			want := split
			if want == "" {
				want = "train"
			}
			if d.Split != want || d.Len() != 5 || !slices.Equal(d.Shape, []int{1, 2, 3}) || d.Name != dir {
				t.Fatalf("split %q: got split %q, %d examples, shape %v, name %q", split, d.Split, d.Len(), d.Shape, d.Name)
			}
			for i, v := range d.X {
				if v != float32(i)/255 {
					t.Fatalf("X[%d] = %v, want %v", i, v, float32(i)/255)
				}
			}
			if !slices.Equal(d.Y, []int{0, 1, 2, 0, 1}) || !slices.Equal(d.Classes, []string{"0", "1", "2"}) {
				t.Fatalf("labels %v classes %q", d.Y, d.Classes)
			}
			if d.Preprocess.Scale != 1.0/255 || d.Preprocess.Layout != LayoutNCHW {
				t.Fatalf("preprocess %+v", d.Preprocess)
			}
			if !strings.Contains(d.Source, "labels-idx1-ubyte") || !strings.HasPrefix(d.Fingerprint, "sha256:") {
				t.Fatalf("source %q fingerprint %q", d.Source, d.Fingerprint)
			}
		}
	}
}

func TestIDXTestPrefixAndPreferGzip(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "test-images.idx3-ubyte"), idxFile(0x08, []int{1, 1, 1}, []byte{7}))
	writeFile(t, filepath.Join(dir, "test-labels.idx1-ubyte"), idxFile(0x08, []int{1}, []byte{0}))
	d, err := Load(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	if d.X[0] != 7.0/255 {
		t.Fatalf("X = %v", d.X)
	}
	_, err = Load(dir, "")
	wantErr(t, err, dir, "no train split")

	// With a .gz beside its unpacked copy, the .gz is read.
	writeFile(t, filepath.Join(dir, "test-images.idx3-ubyte.gz"), gzipBytes(idxFile(0x08, []int{1, 1, 1}, []byte{9})))
	d, err = Load(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	if d.X[0] != 9.0/255 || !strings.Contains(d.Source, "idx3-ubyte.gz") {
		t.Fatalf("X = %v from %s", d.X, d.Source)
	}
}

func TestIDXOtherTypes(t *testing.T) {
	// float32 (0x0D) and int16 (0x0B) images are kept as stored, big-endian.
	var f32 bytes.Buffer
	binary.Write(&f32, binary.BigEndian, []float32{-1.5, 0, 2.25, 1e6})
	a, err := decodeIDX(bytes.NewReader(idxFile(0x0D, []int{1, 2, 2}, f32.Bytes())), int64(len(idxFile(0x0D, []int{1, 2, 2}, f32.Bytes()))))
	if err != nil {
		t.Fatal(err)
	}
	x, shape, pre, err := a.inputs()
	if err != nil || !slices.Equal(x, []float32{-1.5, 0, 2.25, 1e6}) || !slices.Equal(shape, []int{1, 2, 2}) || pre.Scale != 1 {
		t.Fatalf("float32: %v %v %+v %v", x, shape, pre, err)
	}

	var i16 bytes.Buffer
	binary.Write(&i16, binary.BigEndian, []int16{-300, 300})
	file := idxFile(0x0B, []int{1, 2}, i16.Bytes())
	a, err = decodeIDX(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	x, shape, pre, err = a.inputs()
	if err != nil || !slices.Equal(x, []float32{-300, 300}) || !slices.Equal(shape, []int{2}) || pre.Layout != LayoutFeatures {
		t.Fatalf("int16: %v %v %+v %v", x, shape, pre, err)
	}

	var f64 bytes.Buffer
	binary.Write(&f64, binary.BigEndian, []float64{math.Pi})
	file = idxFile(0x0E, []int{1}, f64.Bytes())
	a, err = decodeIDX(bytes.NewReader(file), int64(len(file)))
	if err != nil || a.float(0) != math.Pi {
		t.Fatalf("float64: %v %v", a, err)
	}
}

func TestIDXErrors(t *testing.T) {
	good := idxFile(0x08, []int{4, 28, 28}, seq(4*784))
	labels := idxFile(0x08, []int{4}, []byte{1, 2, 3, 4})
	gz := gzipBytes(good)
	badCRC := slices.Clone(gz)
	badCRC[len(badCRC)-6] ^= 0xff // the CRC32 in the gzip trailer
	lying := idxFile(0x08, []int{10000, 28, 28}, seq(1234))
	cases := []struct {
		name   string
		images []byte
		labels []byte
		want   []string
	}{
		{"truncated gzip", gz[:len(gz)/2], labels, []string{"t10k-images-idx3-ubyte.gz", "truncated gzip stream"}},
		{"bad gzip checksum", badCRC, labels, []string{"t10k-images-idx3-ubyte.gz", "checksum"}},
		{"wrong magic", append([]byte{0, 0, 0x42, 3}, good[4:]...), labels, []string{"t10k-images-idx3-ubyte.gz", "not an IDX file", "0x00004203"}},
		{"header lies (gzip)", gzipBytes(lying), labels, []string{"t10k-images-idx3-ubyte.gz", "truncated: header says 10000 images of 28x28 (7840000 bytes) but only 1234 bytes of data follow"}},
		{"count mismatch", gz, gzipBytes(idxFile(0x08, []int{3}, []byte{1, 2, 3})), []string{"t10k-images-idx3-ubyte.gz has 4 images but", "t10k-labels-idx1-ubyte.gz has 3 labels"}},
		{"extra data", gzipBytes(append(slices.Clone(good), 1, 2, 3)), labels, []string{"t10k-images-idx3-ubyte.gz", "3 more bytes follow the data"}},
		{"empty", []byte{}, labels, []string{"t10k-images-idx3-ubyte.gz", "empty file"}},
		{"short header", gzipBytes(good[:10]), labels, []string{"t10k-images-idx3-ubyte.gz", "header declares 3 dimensions but only 6 of their 12 bytes follow"}},
		{"labels not rank 1", gz, gzipBytes(idxFile(0x08, []int{4, 2}, seq(8))), []string{"t10k-labels-idx1-ubyte.gz", "labels have shape [4,2]"}},
		{"images rank 1", gzipBytes(idxFile(0x08, []int{4}, seq(4))), labels, []string{"t10k-images-idx3-ubyte.gz", "inputs have shape [4]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), c.images)
			writeFile(t, filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"), c.labels)
			_, err := Load(dir, "test")
			wantErr(t, err, c.want...)
		})
	}

	// Uncompressed, a header that lies is caught before allocating.
	_, err := decodeIDX(bytes.NewReader(lying), int64(len(lying)))
	wantErr(t, err, "truncated: header says 10000 images of 28x28 (7840000 bytes) but only 1234 bytes of data follow")
	huge := idxFile(0x0E, []int{1 << 30, 1 << 30, 1 << 30}, nil)
	_, err = decodeIDX(bytes.NewReader(huge), int64(len(huge)))
	wantErr(t, err, "more than the limit")
}
