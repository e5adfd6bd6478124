package data

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// The fuzz targets call the decoders Load uses on arbitrary bytes. Besides
// not panicking or hanging, they check the allocation bound every decoder
// promises: a file of n bytes never yields more raw data than n (or, for
// compressed data, than DEFLATE can produce from n bytes), whatever its
// header declares.
//
//	go test ./data -run '^$' -fuzz '^FuzzIDX$' -fuzztime 60s

// checkArray verifies a decoded array is self-consistent and runs the
// conversions Load applies to it.
func checkArray(t *testing.T, a *array, limit int64) {
	t.Helper()
	if int64(len(a.raw)) > limit {
		t.Fatalf("decoded %d bytes from input bounded to %d", len(a.raw), limit)
	}
	n, ok := product(a.shape, MaxDecodedBytes)
	if !ok || n*int64(a.size) != int64(len(a.raw)) {
		t.Fatalf("shape %v of %d-byte elements does not match %d raw bytes", a.shape, a.size, len(a.raw))
	}
	if x, shape, _, err := a.inputs(); err == nil {
		per, _ := product(shape, MaxValues)
		if per == 0 || int64(len(x))%per != 0 || len(x) != a.count() {
			t.Fatalf("inputs: %d values do not fit examples of shape %v", len(x), shape)
		}
	}
	if y, max, err := a.labels(); err == nil {
		for _, v := range y {
			if v < 0 || v > max {
				t.Fatalf("label %d outside 0..%d", v, max)
			}
		}
	}
}

func FuzzIDX(f *testing.F) {
	var f32 bytes.Buffer
	binary.Write(&f32, binary.BigEndian, []float32{1, -2, 3.5, 0})
	f.Add(idxFile(0x08, []int{2, 3, 3}, seq(18)))
	f.Add(gzipBytes(idxFile(0x08, []int{2, 3, 3}, seq(18))))
	f.Add(idxFile(0x08, []int{5}, []byte{0, 1, 2, 3, 4}))
	f.Add(gzipBytes(idxFile(0x08, []int{5}, []byte{0, 1, 2, 3, 4})))
	f.Add(idxFile(0x0D, []int{1, 2, 2}, f32.Bytes()))
	f.Add(idxFile(0x0B, []int{2, 1}, []byte{0x80, 0, 0x7f, 0xff}))
	f.Add(idxFile(0x08, []int{1, 2, 2, 3}, seq(12)))
	f.Add(idxFile(0x08, []int{10000, 28, 28}, seq(10)))
	f.Add(gzipBytes(idxFile(0x0E, []int{1 << 20, 1 << 20}, seq(16))))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeIDX(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if a != nil {
				t.Fatal("array returned with an error")
			}
			return
		}
		checkArray(t, a, maxInflated(int64(len(b))))
	})
}

func FuzzNPY(f *testing.F) {
	f.Add(u8npy([]int{2, 2, 2}, seq(8)))
	f.Add(f32npy([]int{2, 2}, []float32{1, 2, 3, 4}))
	f.Add(i64npy([]int64{0, 1, 2}))
	f.Add(npyFile(2, ">i4", false, []int{2}, seq(8)))
	f.Add(npyFile(3, "<f2", true, []int{2, 3}, seq(12)))
	f.Add(npyFile(1, "|b1", false, []int{3}, []byte{0, 1, 1}))
	f.Add(npyFile(1, "<u2", true, []int{2, 1, 2, 3}, seq(24)))
	f.Add(npyFile(1, "|O", false, []int{2}, seq(16)))
	f.Add(npyFile(1, "<f8", false, []int{1 << 40, 1 << 30}, nil))
	f.Add(npyFile(1, "|u1", false, []int{}, []byte{3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeNPY(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		checkArray(t, a, int64(len(b)))
	})
}

func FuzzNPZ(f *testing.F) {
	x := u8npy([]int{2, 2, 2}, seq(8))
	y := i64npy([]int64{0, 1})
	add := func(archive []byte) { f.Add(archive, x, false, uint32(0)) }
	add(npzFileBytes(false, npzEntry{"x.npy", x}, npzEntry{"y.npy", y}))
	add(npzFileBytes(true, npzEntry{"x.npy", x}, npzEntry{"y.npy", y}))
	add(npzFileBytes(true,
		npzEntry{"x_train.npy", u8npy([]int{2, 1, 2, 3}, seq(12))}, npzEntry{"y_train.npy", y},
		npzEntry{"x_test.npy", f32npy([]int{1, 2}, []float32{1, 2})}, npzEntry{"y_test.npy", i64npy([]int64{3})}))
	add(npzFileBytes(false, npzEntry{"images.npy", npyFile(1, "|O", false, []int{1}, seq(8))}, npzEntry{"labels.npy", y}))
	add(npzFileBytes(true, npzEntry{"features.npy", npyFile(1, "<f8", true, []int{2, 2}, seq(32))}, npzEntry{"labels.npy", y}))
	f.Add([]byte{}, f32npy([]int{2, 1, 1, 3}, []float32{1, 2, 3, 4, 5, 6}), true, uint32(0))
	f.Add([]byte{}, x, true, uint32(1<<31))
	f.Add([]byte{}, x, false, uint32(200))

	// Zip's checksums and directory make most byte-level mutations of a
	// whole archive fail early, so besides the archive as given, the
	// target builds one around a fuzzed x.npy entry, optionally with the
	// entry's declared uncompressed size replaced by lie.
	f.Fuzz(func(t *testing.T, archive, entry []byte, deflate bool, lie uint32) {
		checkNPZ(t, archive)
		built := npzFileBytes(deflate, npzEntry{"x.npy", entry}, npzEntry{"y.npy", i64npy([]int64{0, 1})})
		if lie != 0 {
			for _, h := range []struct {
				sig string
				off int
			}{{"PK\x01\x02", 24}, {"PK\x03\x04", 22}} {
				if i := bytes.Index(built, []byte(h.sig)); i >= 0 && i+h.off+4 <= len(built) {
					binary.LittleEndian.PutUint32(built[i+h.off:], lie)
				}
			}
		}
		checkNPZ(t, built)
	})
}

// checkNPZ reads every entry of an archive the way loadNPZ does.
func checkNPZ(t *testing.T, b []byte) {
	z, err := openNPZ(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return
	}
	for _, split := range []string{"", "train", "test"} {
		z.splitKeys(split)
	}
	for _, key := range z.keys {
		a, err := z.read(key)
		if err != nil {
			continue
		}
		checkArray(t, a, maxInflated(int64(len(b))))
	}
}

func FuzzCSV(f *testing.F) {
	f.Add([]byte("a,b,label\n1,2,cat\n3,4,dog\n"))
	f.Add([]byte("1,2,0\n3,4,1\n"))
	f.Add([]byte("\ufeffx,class,y\n1,\"2\",3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := decodeCSV(bytes.NewReader(b))
		if err != nil {
			return
		}
		if tb.features < 1 || len(tb.x) != len(tb.y)*tb.features || len(tb.classes) == 0 {
			t.Fatalf("%d values, %d labels, %d features, %d classes", len(tb.x), len(tb.y), tb.features, len(tb.classes))
		}
		for _, y := range tb.y {
			if y < 0 || y >= len(tb.classes) {
				t.Fatalf("label %d of %d classes", y, len(tb.classes))
			}
		}
	})
}
