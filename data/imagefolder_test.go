package data

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func grayImage(w, h int, base byte) *image.Gray {
	m := image.NewGray(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = base + byte(i)
	}
	return m
}

func rgbImage(w, h int, base byte) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := y*w + x
			m.SetNRGBA(x, y, color.NRGBA{base + byte(i), base + 100 + byte(i), base + 200 + byte(i), 255})
		}
	}
	return m
}

func TestLoadImageGrayAndRGB(t *testing.T) {
	dir := t.TempDir()
	x, shape, err := LoadImage(writeFile(t, filepath.Join(dir, "g.png"), pngBytes(grayImage(3, 2, 10))))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shape, []int{1, 2, 3}) {
		t.Fatalf("gray shape %v", shape)
	}
	for i, v := range x {
		if want := float32(10+i) / 255; v != want {
			t.Fatalf("gray x[%d] = %v, want %v", i, v, want)
		}
	}

	x, shape, err = LoadImage(writeFile(t, filepath.Join(dir, "c.png"), pngBytes(rgbImage(2, 2, 1))))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shape, []int{3, 2, 2}) {
		t.Fatalf("rgb shape %v", shape)
	}
	// Planes: R then G then B, each row-major.
	want := []byte{1, 2, 3, 4, 101, 102, 103, 104, 201, 202, 203, 204}
	for i, v := range x {
		if v != float32(want[i])/255 {
			t.Fatalf("rgb x[%d] = %v, want %v", i, v, float32(want[i])/255)
		}
	}

	// Alpha is dropped, keeping the stored colour (not composited).
	m := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	m.SetNRGBA(0, 0, color.NRGBA{200, 100, 50, 10})
	x, _, err = LoadImage(writeFile(t, filepath.Join(dir, "a.png"), pngBytes(m)))
	if err != nil || !slices.Equal(x, []float32{200.0 / 255, 100.0 / 255, 50.0 / 255}) {
		t.Fatalf("alpha: %v %v", x, err)
	}

	// A palette of grays is grayscale; a coloured palette is RGB.
	pg := image.NewPaletted(image.Rect(0, 0, 2, 1), color.Palette{color.Gray{0}, color.Gray{128}})
	pg.Pix[1] = 1
	x, shape, err = LoadImage(writeFile(t, filepath.Join(dir, "pg.png"), pngBytes(pg)))
	if err != nil || !slices.Equal(shape, []int{1, 1, 2}) || x[1] != 128.0/255 {
		t.Fatalf("gray palette: %v %v %v", x, shape, err)
	}
	pc := image.NewPaletted(image.Rect(0, 0, 1, 1), color.Palette{color.RGBA{255, 0, 0, 255}})
	x, shape, err = LoadImage(writeFile(t, filepath.Join(dir, "pc.png"), pngBytes(pc)))
	if err != nil || !slices.Equal(shape, []int{3, 1, 1}) || !slices.Equal(x, []float32{1, 0, 0}) {
		t.Fatalf("colour palette: %v %v %v", x, shape, err)
	}

	// 16-bit gray keeps its precision.
	g16 := image.NewGray16(image.Rect(0, 0, 2, 1))
	g16.SetGray16(0, 0, color.Gray16{Y: 65535})
	g16.SetGray16(1, 0, color.Gray16{Y: 1})
	x, shape, err = LoadImage(writeFile(t, filepath.Join(dir, "g16.png"), pngBytes(g16)))
	if err != nil || !slices.Equal(shape, []int{1, 1, 2}) || x[0] != 1 || x[1] != float32(1)/65535 {
		t.Fatalf("16-bit: %v %v %v", x, shape, err)
	}

	// JPEG, grayscale.
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, grayImage(8, 8, 0), &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	_, shape, err = LoadImage(writeFile(t, filepath.Join(dir, "g.jpg"), jb.Bytes()))
	if err != nil || !slices.Equal(shape, []int{1, 8, 8}) {
		t.Fatalf("jpeg: %v %v", shape, err)
	}

	_, _, err = LoadImage(writeFile(t, filepath.Join(dir, "bad.png"), []byte("GIF89a....")))
	wantErr(t, err, "bad.png", "not a PNG or JPEG")
	// A tiny file claiming a huge image is refused before decoding.
	huge := pngBytes(grayImage(1, 1, 0))
	copy(huge[16:24], []byte{0, 1, 0, 0, 0, 1, 0, 0}) // IHDR width, height = 65536
	binary.BigEndian.PutUint32(huge[29:33], crc32.ChecksumIEEE(huge[12:29]))
	_, _, err = LoadImage(writeFile(t, filepath.Join(dir, "huge.png"), huge))
	wantErr(t, err, "huge.png", "65536x65536", "limit")
}

func TestImageFolderGray(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "dog", "b.png"), pngBytes(grayImage(3, 2, 50)))
	writeFile(t, filepath.Join(root, "dog", "a.png"), pngBytes(grayImage(3, 2, 40)))
	writeFile(t, filepath.Join(root, "cat", "sub", "z.png"), pngBytes(grayImage(3, 2, 10)))
	writeFile(t, filepath.Join(root, "cat", "notes.txt"), []byte("ignored"))
	writeFile(t, filepath.Join(root, "cat", ".hidden.png"), []byte("ignored"))
	writeFile(t, filepath.Join(root, "empty", ".keep"), nil)
	d, err := Load(root, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Classes, []string{"cat", "dog", "empty"}) || !slices.Equal(d.Y, []int{0, 1, 1}) {
		t.Fatalf("classes %q labels %v", d.Classes, d.Y)
	}
	if !slices.Equal(d.Shape, []int{1, 2, 3}) || d.Preprocess != (Preprocess{Scale: 1.0 / 255, Layout: LayoutNCHW}) || d.Split != "" {
		t.Fatalf("shape %v preprocess %+v split %q", d.Shape, d.Preprocess, d.Split)
	}
	// Examples come class by class, files in name order: cat/sub/z, dog/a, dog/b.
	for e, base := range []int{10, 40, 50} {
		for i, v := range d.Example(e) {
			if want := float32(base+i) / 255; v != want {
				t.Fatalf("example %d value %d = %v, want %v", e, i, v, want)
			}
		}
	}
	// Each example equals what LoadImage gives for its file.
	x, _, err := LoadImage(filepath.Join(root, "dog", "a.png"))
	if err != nil || !slices.Equal(x, d.Example(1)) {
		t.Fatalf("LoadImage differs from the folder: %v %v", x, err)
	}
	_, err = Load(root, "train")
	wantErr(t, err, root, "single split")

	// Moving a file to another class changes the fingerprint even though
	// the bytes, in order, are the same.
	before := d.Fingerprint
	writeFile(t, filepath.Join(root, "empty", "b.png"), pngBytes(grayImage(3, 2, 50)))
	if err := removeFile(filepath.Join(root, "dog", "b.png")); err != nil {
		t.Fatal(err)
	}
	d, err = Load(root, "")
	if err != nil {
		t.Fatal(err)
	}
	if d.Fingerprint == before || !slices.Equal(d.Y, []int{0, 1, 2}) {
		t.Fatalf("fingerprint unchanged (%s) or labels %v", d.Fingerprint, d.Y)
	}
}

func TestImageFolderMixedAndSplits(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "train", "a", "1.png"), pngBytes(grayImage(2, 2, 7)))
	writeFile(t, filepath.Join(root, "train", "b", "1.PNG"), pngBytes(rgbImage(2, 2, 1)))
	writeFile(t, filepath.Join(root, "test", "c", "1.png"), pngBytes(grayImage(2, 2, 9)))
	train, err := Load(root, "")
	if err != nil {
		t.Fatal(err)
	}
	// One colour image makes the split RGB; the gray one is replicated.
	if train.Split != "train" || !slices.Equal(train.Shape, []int{3, 2, 2}) || train.Len() != 2 {
		t.Fatalf("split %q shape %v len %d", train.Split, train.Shape, train.Len())
	}
	g := train.Example(0)
	if !slices.Equal(g[0:4], g[4:8]) || !slices.Equal(g[0:4], g[8:12]) || g[0] != 7.0/255 {
		t.Fatalf("gray example not replicated: %v", g)
	}
	// Classes are the union of both splits, so labels agree between them.
	test, err := Load(root, "test")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "b", "c"}
	if !slices.Equal(train.Classes, want) || !slices.Equal(test.Classes, want) || !slices.Equal(test.Y, []int{2}) || !slices.Equal(test.Shape, []int{1, 2, 2}) {
		t.Fatalf("classes %q / %q, test labels %v shape %v", train.Classes, test.Classes, test.Y, test.Shape)
	}
	if !strings.HasSuffix(test.Source, "test") {
		t.Fatalf("source %q", test.Source)
	}
	info, err := Info(root)
	if err == nil {
		t.Fatalf("train is 3x2x2 and test 1x2x2, Info should say so: %+v", info)
	}
	wantErr(t, err, "shape")
}

func TestImageFolderErrors(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a", "1.png"), pngBytes(grayImage(2, 2, 0)))
	odd := writeFile(t, filepath.Join(root, "b", "2.png"), pngBytes(grayImage(3, 2, 0)))
	_, err := Load(root, "")
	wantErr(t, err, odd, "is 3x2", "2x2", "same size")

	root = t.TempDir()
	writeFile(t, filepath.Join(root, "a", "1.png"), pngBytes(grayImage(2, 2, 0)))
	bad := writeFile(t, filepath.Join(root, "a", "2.jpg"), []byte("\xff\xd8 not really"))
	_, err = Load(root, "")
	wantErr(t, err, bad)

	root = t.TempDir()
	writeFile(t, filepath.Join(root, "readme.txt"), nil)
	_, err = Load(root, "")
	wantErr(t, err, root, "no class folders")

	root = t.TempDir()
	writeFile(t, filepath.Join(root, "a", "readme.txt"), nil)
	_, err = Load(root, "")
	wantErr(t, err, root, "no PNG or JPEG files")

	root = t.TempDir()
	writeFile(t, filepath.Join(root, "train", "a", "1.png"), pngBytes(grayImage(2, 2, 0)))
	_, err = Load(root, "test")
	wantErr(t, err, root, "no test split")
}
