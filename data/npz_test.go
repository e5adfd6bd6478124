package data

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func decodeNPYBytes(b []byte) (*array, error) { return decodeNPY(bytes.NewReader(b), int64(len(b))) }

func TestNPYVersionsAndTypes(t *testing.T) {
	for _, v := range []int{1, 2, 3} {
		a, err := decodeNPYBytes(npyFile(v, "<i2", false, []int{2, 2}, []byte{1, 0, 0xff, 0xff, 0, 1, 2, 0}))
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		if !slices.Equal(a.shape, []int{2, 2}) || a.float(0) != 1 || a.float(1) != -1 || a.float(2) != 256 || a.float(3) != 2 {
			t.Fatalf("version %d: shape %v values %v %v %v %v", v, a.shape, a.float(0), a.float(1), a.float(2), a.float(3))
		}
	}
	var be bytes.Buffer
	binary.Write(&be, binary.BigEndian, []float64{1.5, -2})
	a, err := decodeNPYBytes(npyFile(1, ">f8", false, []int{2}, be.Bytes()))
	if err != nil || a.float(0) != 1.5 || a.float(1) != -2 {
		t.Fatalf("big-endian float64: %v", err)
	}
	// float16: 1.0, -2.0, 65504 (max), smallest subnormal, +Inf.
	a, err = decodeNPYBytes(npyFile(1, "<f2", false, []int{5}, []byte{0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x7c}))
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, -2, 65504, math.Ldexp(1, -24), math.Inf(1)}
	for i, w := range want {
		if a.float(i) != w {
			t.Fatalf("float16 %d = %v, want %v", i, a.float(i), w)
		}
	}
	// Scalars have shape ().
	a, err = decodeNPYBytes(npyFile(1, "|u1", false, []int{}, []byte{5}))
	if err != nil || len(a.shape) != 0 || a.count() != 1 {
		t.Fatalf("scalar: %v %v", a, err)
	}
}

func TestNPYFortranOrder(t *testing.T) {
	// The 2x3 matrix [[0 1 2] [3 4 5]] stored column-major is 0 3 1 4 2 5.
	a, err := decodeNPYBytes(npyFile(1, "|u1", true, []int{2, 3}, []byte{0, 3, 1, 4, 2, 5}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.raw, []byte{0, 1, 2, 3, 4, 5}) {
		t.Fatalf("C order %v", a.raw)
	}
	// 3-D: element (i,j,k) of shape (2,3,4) holds 100i+10j+k.
	var f []byte
	for k := 0; k < 4; k++ {
		for j := 0; j < 3; j++ {
			for i := 0; i < 2; i++ {
				f = append(f, byte(100*i+10*j+k))
			}
		}
	}
	a, err = decodeNPYBytes(npyFile(1, "|u1", true, []int{2, 3, 4}, f))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 0; i < 2; i++ {
		for j := 0; j < 3; j++ {
			for k := 0; k < 4; k++ {
				if a.raw[n] != byte(100*i+10*j+k) {
					t.Fatalf("element (%d,%d,%d) = %d", i, j, k, a.raw[n])
				}
				n++
			}
		}
	}
}

func TestNPYErrors(t *testing.T) {
	good := u8npy([]int{2, 2}, seq(4))
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"object", npyFile(1, "|O", false, []int{2}, make([]byte, 16)), "pickles"},
		{"structured", []byte(strings.Replace(string(npyFile(1, "|u1", false, []int{2}, seq(2))), "'|u1'", "[('a','<f4')]", 1)), "structured"},
		{"unicode", npyFile(1, "<U4", false, []int{1}, make([]byte, 16)), "unsupported dtype"},
		{"bad magic", append([]byte("\x93NUMPZ"), good[6:]...), "not an NPY file"},
		{"bad version", append(append([]byte{}, good[:6]...), append([]byte{4, 0}, good[8:]...)...), "unsupported NPY version 4.0"},
		{"truncated data", good[:len(good)-1], "truncated: header says shape [2,2] of uint8 (4 bytes) but only 3 bytes of data follow"},
		{"extra data", append(slices.Clone(good), 0), "but 5 bytes of data follow"},
		{"header too long", append(append([]byte{}, good[:8]...), 0xff, 0xff), "truncated: NPY header claims 65535 bytes"},
		{"huge shape", npyFile(1, "<f8", false, []int{1 << 40, 1 << 40}, nil), "more than the limit"},
		{"lying shape", npyFile(1, "<f4", false, []int{1000000}, seq(8)), "truncated: header says shape [1000000] of float32 (4000000 bytes) but only 8 bytes"},
		{"short", good[:7], "too short for an NPY header"},
		{"missing key", []byte(strings.Replace(string(good), "'fortran_order': False, ", strings.Repeat(" ", 24), 1)), "missing key \"fortran_order\""},
		{"extra key", []byte(strings.Replace(string(good), "'fortran_order': False, ", "'fortran_order': False, 'x':1,", 1)), "unexpected key"},
		{"bad order", npyFile(1, "|f4", false, []int{1}, seq(4)), "byte order"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeNPYBytes(c.file)
			wantErr(t, err, c.want)
		})
	}
	_, err := decodeNPYBytes(npyFile(1, "|O", false, []int{2}, make([]byte, 16)))
	wantErr(t, err, "never loaded", "bulwark scan")
}

// loadNPZBytes writes an npz file and loads split from it.
func loadNPZBytes(t *testing.T, file []byte, split string) (*Dataset, error) {
	t.Helper()
	p := writeFile(t, filepath.Join(t.TempDir(), "data.npz"), file)
	return Load(p, split)
}

func TestNPZImagesNHWCAndNCHW(t *testing.T) {
	// Two 2x2 RGB images channels-last: pixel (h,w) channel c = 100e+10c+2h+w.
	var nhwc []byte
	for e := 0; e < 2; e++ {
		for h := 0; h < 2; h++ {
			for w := 0; w < 2; w++ {
				for c := 0; c < 3; c++ {
					nhwc = append(nhwc, byte(100*e+10*c+2*h+w))
				}
			}
		}
	}
	for _, compress := range []bool{false, true} {
		d, err := loadNPZBytes(t, npzFileBytes(compress,
			npzEntry{"x.npy", u8npy([]int{2, 2, 2, 3}, nhwc)},
			npzEntry{"y.npy", i64npy([]int64{1, 0})}), "")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(d.Shape, []int{3, 2, 2}) || d.Preprocess.Scale != 1.0/255 || d.Preprocess.Layout != LayoutNCHW || d.Split != "" {
			t.Fatalf("shape %v preprocess %+v split %q", d.Shape, d.Preprocess, d.Split)
		}
		i := 0
		for e := 0; e < 2; e++ {
			for c := 0; c < 3; c++ {
				for p := 0; p < 4; p++ {
					if want := float32(100*e+10*c+p) / 255; d.X[i] != want {
						t.Fatalf("X[%d] = %v, want %v", i, d.X[i], want)
					}
					i++
				}
			}
		}
		if !slices.Equal(d.Y, []int{1, 0}) || !slices.Equal(d.Classes, []string{"0", "1"}) {
			t.Fatalf("labels %v classes %v", d.Y, d.Classes)
		}
	}

	// float32 NCHW is kept as is, without scaling.
	vals := []float32{0.5, -1, 2, 3, 4, 5, 6, 7}
	d, err := loadNPZBytes(t, npzFileBytes(true,
		npzEntry{"images.npy", f32npy([]int{1, 2, 2, 2}, vals)},
		npzEntry{"labels.npy", i64npy([]int64{0})}), "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Shape, []int{2, 2, 2}) || !slices.Equal(d.X, vals) || d.Preprocess.Scale != 1 {
		t.Fatalf("shape %v X %v scale %v", d.Shape, d.X, d.Preprocess.Scale)
	}
	// rank 3 gets one channel.
	d, err = loadNPZBytes(t, npzFileBytes(false,
		npzEntry{"x.npy", u8npy([]int{2, 3, 4}, seq(24))},
		npzEntry{"y.npy", u8npy([]int{2}, []byte{0, 0})}), "")
	if err != nil || !slices.Equal(d.Shape, []int{1, 3, 4}) {
		t.Fatalf("rank 3: %v %v", d, err)
	}
}

func TestNPZFeaturesAndSplits(t *testing.T) {
	// features/labels, with float labels holding integers and Keras-style [N,1].
	d, err := loadNPZBytes(t, npzFileBytes(false,
		npzEntry{"features.npy", f32npy([]int{3, 2}, []float32{1, 2, 3, 4, 5, 6})},
		npzEntry{"labels.npy", f32npy([]int{3, 1}, []float32{2, 0, 1})}), "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Shape, []int{2}) || d.Preprocess.Layout != LayoutFeatures || !slices.Equal(d.Y, []int{2, 0, 1}) {
		t.Fatalf("shape %v layout %s labels %v", d.Shape, d.Preprocess.Layout, d.Y)
	}

	// x_train/y_train/x_test/y_test: classes are numbered over both splits.
	file := npzFileBytes(true,
		npzEntry{"x_train.npy", u8npy([]int{2, 1, 1}, []byte{1, 2})},
		npzEntry{"y_train.npy", i64npy([]int64{0, 1})},
		npzEntry{"x_test.npy", u8npy([]int{1, 1, 1}, []byte{3})},
		npzEntry{"y_test.npy", i64npy([]int64{4})})
	p := writeFile(t, filepath.Join(t.TempDir(), "keras.npz"), file)
	train, err := Load(p, "")
	if err != nil {
		t.Fatal(err)
	}
	test, err := Load(p, "test")
	if err != nil {
		t.Fatal(err)
	}
	if train.Split != "train" || train.Len() != 2 || test.Len() != 1 || test.X[0] != 3.0/255 {
		t.Fatalf("train %q %d test %d %v", train.Split, train.Len(), test.Len(), test.X)
	}
	if train.NumClasses() != 5 || test.NumClasses() != 5 {
		t.Fatalf("classes %d and %d, want 5 in both", train.NumClasses(), test.NumClasses())
	}
	if train.Fingerprint == test.Fingerprint {
		t.Fatal("splits of one file share a fingerprint")
	}
	info, err := Info(p)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != FormatNPZ || len(info.Splits) != 2 || info.Splits[1].Fingerprint != test.Fingerprint || info.Splits[1].ClassCounts[4] != 1 {
		t.Fatalf("info %+v", info)
	}
}

func TestNPZErrors(t *testing.T) {
	x := u8npy([]int{2, 2, 2}, seq(8))
	y := i64npy([]int64{0, 1})
	cases := []struct {
		name  string
		file  []byte
		split string
		want  []string
	}{
		{"object inputs", npzFileBytes(false, npzEntry{"x.npy", npyFile(1, "|O", false, []int{2}, make([]byte, 16))}, npzEntry{"y.npy", y}), "", []string{"data.npz", "x.npy", "pickles", "bulwark scan"}},
		{"count mismatch", npzFileBytes(false, npzEntry{"x.npy", x}, npzEntry{"y.npy", i64npy([]int64{0, 1, 1})}), "", []string{"data.npz", "x has 2 examples but y has 3 labels"}},
		{"negative label", npzFileBytes(false, npzEntry{"x.npy", x}, npzEntry{"y.npy", i64npy([]int64{0, -1})}), "", []string{"data.npz", "label 1 is -1"}},
		{"fractional label", npzFileBytes(false, npzEntry{"x.npy", x}, npzEntry{"y.npy", f32npy([]int{2}, []float32{0, 0.5})}), "", []string{"data.npz", "label 1 is 0.5, not an integer"}},
		{"one-hot labels", npzFileBytes(false, npzEntry{"x.npy", x}, npzEntry{"y.npy", u8npy([]int{2, 2}, []byte{1, 0, 0, 1})}), "", []string{"one-hot"}},
		{"no known keys", npzFileBytes(false, npzEntry{"arr_0.npy", x}, npzEntry{"arr_1.npy", y}), "", []string{"data.npz", "no inputs and labels", "arr_0"}},
		{"split of single", npzFileBytes(false, npzEntry{"x.npy", x}, npzEntry{"y.npy", y}), "test", []string{"data.npz", "single split", "SplitFraction"}},
		{"not a zip", x, "", []string{"data.npz", "not a valid npz"}},
		{"corrupt entry", npzFileBytes(false, npzEntry{"x.npy", x[:len(x)-1]}, npzEntry{"y.npy", y}), "", []string{"data.npz", "x.npy", "truncated"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadNPZBytes(t, c.file, c.split)
			wantErr(t, err, c.want...)
		})
	}
}

// TestNPZZipBomb checks entries whose directory sizes lie are refused
// before anything is allocated from them.
func TestNPZZipBomb(t *testing.T) {
	file := npzFileBytes(true, npzEntry{"x.npy", u8npy([]int{2, 2, 2}, seq(8))}, npzEntry{"y.npy", i64npy([]int64{0, 1})})
	// Rewrite x.npy's uncompressed size in the central directory (and its
	// local header) to claim 4 GiB.
	claim := func(b []byte, size uint32) []byte {
		b = slices.Clone(b)
		for _, sig := range []string{"PK\x01\x02", "PK\x03\x04"} {
			i := bytes.Index(b, []byte(sig))
			off := 24 // uncompressed size in the central directory
			if sig == "PK\x03\x04" {
				off = 22
			}
			binary.LittleEndian.PutUint32(b[i+off:], size)
		}
		return b
	}
	_, err := loadNPZBytes(t, claim(file, 0xfffffff0), "")
	wantErr(t, err, "data.npz", "x.npy", "more than DEFLATE can produce")
	// A small lie still within DEFLATE's reach is caught by the NPY size check.
	_, err = loadNPZBytes(t, claim(file, 200), "")
	wantErr(t, err, "data.npz", "x.npy")
}

func TestValidateFindsNaN(t *testing.T) {
	vals := []float32{0, 1, 2, 3, 4, float32(math.NaN()), 6, 7}
	d, err := loadNPZBytes(t, npzFileBytes(false,
		npzEntry{"x.npy", f32npy([]int{4, 2}, vals)},
		npzEntry{"y.npy", i64npy([]int64{0, 1, 0, 1})}), "")
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, d.Validate(), "data.npz", "example 2 has NaN at position 1")
	d.X[5] = float32(math.Inf(-1))
	wantErr(t, d.Validate(), "example 2 has -Inf")
	d.X[5] = 0
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestNumpyFixtures reads files numpy itself wrote (testdata/
// make_numpy_fixtures.py), so the parser is checked against the real
// writer and not only against our own test builders.
func TestNumpyFixtures(t *testing.T) {
	train, err := Load("testdata/numpy_keras.npz", "")
	if err != nil {
		t.Fatal(err)
	}
	if train.Split != "train" || !slices.Equal(train.Shape, []int{1, 4, 5}) || !slices.Equal(train.Y, []int{0, 1, 2}) || train.NumClasses() != 5 {
		t.Fatalf("keras train: split %q shape %v labels %v classes %d", train.Split, train.Shape, train.Y, train.NumClasses())
	}
	for i, v := range train.X {
		if want := float32(i*7%256) / 255; v != want {
			t.Fatalf("keras X[%d] = %v, want %v", i, v, want)
		}
	}
	test, err := Load("testdata/numpy_keras.npz", "test")
	if err != nil || test.Len() != 2 || !slices.Equal(test.Y, []int{4, 0}) {
		t.Fatalf("keras test: %v %v", test, err)
	}

	d, err := Load("testdata/numpy_nhwc.npz", "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Shape, []int{3, 5, 4}) || !slices.Equal(d.Y, []int{1, 0}) {
		t.Fatalf("nhwc: shape %v labels %v", d.Shape, d.Y)
	}
	for n := 0; n < 2; n++ {
		ex := d.Example(n)
		for c := 0; c < 3; c++ {
			for h := 0; h < 5; h++ {
				for w := 0; w < 4; w++ {
					if got, want := ex[(c*5+h)*4+w], float32(100*n+10*c+4*h+w)/255; got != want {
						t.Fatalf("nhwc example %d (%d,%d,%d) = %v, want %v", n, c, h, w, got, want)
					}
				}
			}
		}
	}

	d, err = Load("testdata/numpy_features.npz", "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Shape, []int{3}) || !slices.Equal(d.Y, []int{0, 1, 1, 0}) || d.Preprocess.Layout != LayoutFeatures {
		t.Fatalf("features: shape %v labels %v", d.Shape, d.Y)
	}
	for i := 0; i < 4; i++ {
		for j := 0; j < 3; j++ {
			if got := d.X[i*3+j]; got != float32(10*i+j) {
				t.Fatalf("fortran features (%d,%d) = %v", i, j, got)
			}
		}
	}
	f, err := os.Open("testdata/numpy_features.npz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	z, err := openNPZ(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	be, err := z.read("be")
	if err != nil || !be.big || be.float(0) != 1.5 || be.float(1) != -2.25 {
		t.Fatalf("big-endian: %+v %v", be, err)
	}
	half, err := z.read("half")
	if err != nil || half.float(0) != 0.5 || half.float(1) != -3 || half.float(2) != 65504 {
		t.Fatalf("float16: %+v %v", half, err)
	}

	_, err = Load("testdata/numpy_object.npz", "")
	wantErr(t, err, "numpy_object.npz", "x.npy", "pickles", "bulwark scan")
}
