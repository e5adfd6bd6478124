package data

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// array is an n-dimensional array decoded from an IDX or NPY file. The
// element bytes are kept exactly as stored (C order, in the file's byte
// order) and converted only when the caller knows whether it wants inputs or
// labels, so one decoder serves both.
type array struct {
	kind  byte // 'u' unsigned integer, 'i' signed integer, 'f' float, 'b' bool
	size  int  // bytes per element: 1, 2, 4 or 8
	big   bool // big-endian elements
	shape []int
	raw   []byte
}

// dtype names the element type the way numpy does ("uint8", "float32", ...),
// for error messages.
func (a *array) dtype() string {
	switch a.kind {
	case 'u':
		return "uint" + strconv.Itoa(8*a.size)
	case 'i':
		return "int" + strconv.Itoa(8*a.size)
	case 'f':
		return "float" + strconv.Itoa(8*a.size)
	case 'b':
		return "bool"
	}
	return "unknown"
}

// count is the number of elements.
func (a *array) count() int { return len(a.raw) / a.size }

func (a *array) order() binary.ByteOrder {
	if a.big {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// bits returns element i's bytes as an unsigned integer in native order.
func (a *array) bits(i int) uint64 {
	b := a.raw[i*a.size : (i+1)*a.size]
	switch a.size {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(a.order().Uint16(b))
	case 4:
		return uint64(a.order().Uint32(b))
	default:
		return a.order().Uint64(b)
	}
}

// float returns element i as a float64. Integers beyond 2^53 lose precision,
// which is harmless for inputs; labels use integer instead.
func (a *array) float(i int) float64 {
	v := a.bits(i)
	switch a.kind {
	case 'u', 'b':
		return float64(v)
	case 'i':
		return float64(signExtend(v, a.size))
	}
	switch a.size {
	case 2:
		return float64(halfToFloat32(uint16(v)))
	case 4:
		return float64(math.Float32frombits(uint32(v)))
	default:
		return math.Float64frombits(v)
	}
}

// integer returns element i as an exact integer, or ok=false if it is not an
// integral value that fits in an int64 (a fractional or non-finite float, or
// a uint64 above MaxInt64).
func (a *array) integer(i int) (n int64, ok bool) {
	v := a.bits(i)
	switch a.kind {
	case 'u', 'b':
		if v > math.MaxInt64 {
			return 0, false
		}
		return int64(v), true
	case 'i':
		return signExtend(v, a.size), true
	}
	f := a.float(i)
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false // NaN fails f != Trunc(f) too
	}
	return int64(f), true
}

func signExtend(v uint64, size int) int64 {
	shift := 64 - 8*uint(size)
	return int64(v<<shift) >> shift
}

// halfToFloat32 converts an IEEE 754 binary16 value. Numpy writes float16
// arrays ('<f2'), which models trained in half precision often use.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
	case frac == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// Subnormal half: frac * 2^-24 is a normal float32.
	f := float32(frac) * (1.0 / (1 << 24))
	if sign != 0 {
		f = -f
	}
	return f
}

// inputs converts a into examples: X, the shape of one example and its
// layout. Dividing (rather than multiplying by Scale) makes 8-bit images
// bit-identical to torchvision's ToTensor, so models trained there see the
// same numbers. uint8 arrays are taken as 8-bit images and divided by 255;
// everything else is kept as stored.
//
// Shapes: [N,F] is tabular; [N,H,W] is single-channel images; [N,C,H,W] is
// used as is; [N,H,W,C] with C in {1,3,4} and the second dimension not (so
// it cannot be NCHW) is transposed from channels-last to NCHW.
func (a *array) inputs() (x []float32, shape []int, p Preprocess, err error) {
	if len(a.shape) < 2 || len(a.shape) > 4 {
		return nil, nil, p, fmt.Errorf("inputs have shape %s: want [N,F] features, [N,H,W] or [N,C,H,W] / [N,H,W,C] images", shapeString(a.shape))
	}
	n := a.shape[0]
	if n == 0 {
		return nil, nil, p, fmt.Errorf("inputs have shape %s: no examples", shapeString(a.shape))
	}
	per := a.count() / n
	if per == 0 {
		return nil, nil, p, fmt.Errorf("inputs have shape %s: examples are empty", shapeString(a.shape))
	}
	if int64(a.count()) > MaxValues {
		return nil, nil, p, fmt.Errorf("inputs have %d values, more than the limit of %d", a.count(), MaxValues)
	}
	div := float32(1)
	p = Preprocess{Scale: 1, Layout: LayoutFeatures}
	if a.kind == 'u' && a.size == 1 {
		div = 255
		p.Scale = 1.0 / 255
	}
	nhwc := false
	switch len(a.shape) {
	case 2:
		shape = []int{a.shape[1]}
	case 3:
		shape = []int{1, a.shape[1], a.shape[2]}
		p.Layout = LayoutNCHW
	case 4:
		p.Layout = LayoutNCHW
		if isChannelCount(a.shape[3]) && !isChannelCount(a.shape[1]) {
			nhwc = true
			shape = []int{a.shape[3], a.shape[1], a.shape[2]}
		} else {
			shape = []int{a.shape[1], a.shape[2], a.shape[3]}
		}
	}
	x = make([]float32, a.count())
	if !nhwc {
		a.convert(x, div)
		return x, shape, p, nil
	}
	// Channels-last to NCHW: element (n,h,w,c) moves to (n,c,h,w).
	c, h, w := shape[0], shape[1], shape[2]
	src := 0
	for e := 0; e < n; e++ {
		base := e * per
		for y := 0; y < h; y++ {
			for xx := 0; xx < w; xx++ {
				for ch := 0; ch < c; ch++ {
					x[base+(ch*h+y)*w+xx] = a.value(src, div)
					src++
				}
			}
		}
	}
	return x, shape, p, nil
}

func isChannelCount(d int) bool { return d == 1 || d == 3 || d == 4 }

// convert writes every element, divided by div, into dst.
func (a *array) convert(dst []float32, div float32) {
	if a.kind == 'u' && a.size == 1 { // the common case: 8-bit pixels
		for i, b := range a.raw {
			dst[i] = float32(b) / div
		}
		return
	}
	for i := range dst {
		dst[i] = a.value(i, div)
	}
}

func (a *array) value(i int, div float32) float32 {
	v := float32(a.float(i))
	if div != 1 {
		v /= div
	}
	return v
}

// labels converts a into class indices. Labels must be one per example:
// shape [N], or [N,1] as Keras stores them. Values must be non-negative
// integers (floats with integral values are accepted, since some tools save
// labels as float) below MaxClasses. It also returns the largest label.
func (a *array) labels() (y []int, max int, err error) {
	if !(len(a.shape) == 1 || len(a.shape) == 2 && a.shape[1] == 1) {
		if len(a.shape) == 2 {
			return nil, 0, fmt.Errorf("labels have shape %s: want [N] class indices (one-hot labels are not accepted; store the argmax)", shapeString(a.shape))
		}
		return nil, 0, fmt.Errorf("labels have shape %s: want [N] class indices", shapeString(a.shape))
	}
	y = make([]int, a.count())
	max = -1
	for i := range y {
		v, ok := a.integer(i)
		if !ok {
			return nil, 0, fmt.Errorf("label %d is %v, not an integer class index", i, a.float(i))
		}
		if v < 0 || v >= MaxClasses {
			return nil, 0, fmt.Errorf("label %d is %d: class indices must be in 0..%d", i, v, MaxClasses-1)
		}
		y[i] = int(v)
		if y[i] > max {
			max = y[i]
		}
	}
	return y, max, nil
}

func shapeString(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	return "[" + strings.Join(parts, ",") + "]"
}
