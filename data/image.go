package data

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
)

// LoadImage reads one PNG or JPEG file as a [C,H,W] example scaled to
// [0,1], exactly as an image folder dataset holding only this file would:
// C=1 for grayscale images (and palette images whose colours are all
// gray), C=3 otherwise. Alpha is dropped without compositing, keeping the
// stored colour as PIL's convert("RGB") does, so models trained with
// torchvision see the same values. 16-bit images are divided by 65535,
// 8-bit ones by 255.
func LoadImage(path string) (x []float32, shape []int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	img, err := decodeImage(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	gray, deep := colorInfo(img.ColorModel())
	c := 3
	if gray {
		c = 1
	}
	h, w := img.Bounds().Dy(), img.Bounds().Dx()
	x = make([]float32, c*h*w)
	writeCHW(x, img, c, deep)
	return x, []int{c, h, w}, nil
}

// imageConfig reads just enough of r to learn the image's size and colour
// model, after checking it is a PNG or JPEG of a size we accept.
func imageConfig(r io.Reader) (image.Config, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(8)
	var cfg image.Config
	var err error
	switch {
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		cfg, err = png.DecodeConfig(br)
	case bytes.HasPrefix(head, []byte{0xff, 0xd8}):
		cfg, err = jpeg.DecodeConfig(br)
	default:
		return cfg, errors.New("not a PNG or JPEG file")
	}
	if err != nil {
		return cfg, fmt.Errorf("bad image header: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return cfg, fmt.Errorf("image is %dx%d: empty", cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return cfg, fmt.Errorf("image is %dx%d, more than the limit of %d pixels", cfg.Width, cfg.Height, MaxImagePixels)
	}
	return cfg, nil
}

// decodeImage decodes a whole PNG or JPEG file. The header is checked
// first: the decoders allocate the full image from it before reading any
// pixel data.
func decodeImage(b []byte) (image.Image, error) {
	cfg, err := imageConfig(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var img image.Image
	if b[0] == 0x89 {
		img, err = png.Decode(bytes.NewReader(b))
	} else {
		img, err = jpeg.Decode(bytes.NewReader(b))
	}
	if err != nil {
		return nil, fmt.Errorf("bad image data: %w", err)
	}
	if img.Bounds().Dx() != cfg.Width || img.Bounds().Dy() != cfg.Height {
		return nil, fmt.Errorf("decoded image is %dx%d but its header says %dx%d", img.Bounds().Dx(), img.Bounds().Dy(), cfg.Width, cfg.Height)
	}
	return img, nil
}

// colorInfo says whether images of colour model m are grayscale and
// whether they have 16 bits per sample.
func colorInfo(m color.Model) (gray, deep bool) {
	if p, ok := m.(color.Palette); ok {
		for _, c := range p {
			if c == nil {
				continue
			}
			if r, g, b, _ := c.RGBA(); r != g || g != b {
				return false, false
			}
		}
		return true, false
	}
	switch m {
	case color.GrayModel:
		return true, false
	case color.Gray16Model:
		return true, true
	case color.RGBA64Model, color.NRGBA64Model:
		return false, true
	}
	return false, false
}

// writeCHW writes img into dst as c planes (1 or 3) of values in [0,1].
// deep selects 16-bit precision; otherwise samples are reduced to 8 bits
// first, so an 8-bit image gives exactly v/255.
func writeCHW(dst []float32, img image.Image, c int, deep bool) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	plane := w * h
	px := pixelReader(img)
	level := func(v uint16) float32 {
		if deep {
			return float32(v) / 65535
		}
		return float32(v>>8) / 255
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, bl := px(b.Min.X+x, b.Min.Y+y)
			i := y*w + x
			dst[i] = level(r)
			if c == 3 {
				dst[plane+i] = level(g)
				dst[2*plane+i] = level(bl)
			}
		}
	}
}

// pixelReader returns a function giving the straight (not
// alpha-premultiplied) 16-bit RGB of a pixel. The common decoder outputs
// are read from their pixel buffers directly; anything else goes through
// the colour model.
func pixelReader(img image.Image) func(x, y int) (r, g, b uint16) {
	switch m := img.(type) {
	case *image.Gray:
		return func(x, y int) (uint16, uint16, uint16) {
			v := uint16(m.Pix[m.PixOffset(x, y)]) * 0x101
			return v, v, v
		}
	case *image.Gray16:
		return func(x, y int) (uint16, uint16, uint16) {
			i := m.PixOffset(x, y)
			v := uint16(m.Pix[i])<<8 | uint16(m.Pix[i+1])
			return v, v, v
		}
	case *image.NRGBA:
		return func(x, y int) (uint16, uint16, uint16) {
			i := m.PixOffset(x, y)
			return uint16(m.Pix[i]) * 0x101, uint16(m.Pix[i+1]) * 0x101, uint16(m.Pix[i+2]) * 0x101
		}
	case *image.NRGBA64:
		return func(x, y int) (uint16, uint16, uint16) {
			i := m.PixOffset(x, y)
			p := m.Pix[i : i+6]
			return uint16(p[0])<<8 | uint16(p[1]), uint16(p[2])<<8 | uint16(p[3]), uint16(p[4])<<8 | uint16(p[5])
		}
	case *image.Paletted:
		pal := make([][3]uint16, len(m.Palette))
		for i, c := range m.Palette {
			if c != nil {
				r, g, b := straightRGB(c)
				pal[i] = [3]uint16{r, g, b}
			}
		}
		return func(x, y int) (uint16, uint16, uint16) {
			idx := int(m.Pix[m.PixOffset(x, y)])
			if idx >= len(pal) {
				return 0, 0, 0
			}
			return pal[idx][0], pal[idx][1], pal[idx][2]
		}
	}
	return func(x, y int) (uint16, uint16, uint16) { return straightRGB(img.At(x, y)) }
}

// straightRGB returns c's colour without alpha premultiplication.
func straightRGB(c color.Color) (r, g, b uint16) {
	switch c := c.(type) {
	case color.NRGBA:
		return uint16(c.R) * 0x101, uint16(c.G) * 0x101, uint16(c.B) * 0x101
	case color.NRGBA64:
		return c.R, c.G, c.B
	case color.Gray:
		v := uint16(c.Y) * 0x101
		return v, v, v
	case color.Gray16:
		return c.Y, c.Y, c.Y
	}
	n := color.NRGBA64Model.Convert(c).(color.NRGBA64)
	return n.R, n.G, n.B
}
