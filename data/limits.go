package data

import "math"

// Limits on what one source may make us allocate. Every size declared inside
// a file (IDX dimensions, NPY shapes, zip entry sizes, image dimensions) is
// untrusted: it is checked against these limits and against the length of the
// file that is supposed to hold the data before anything is allocated.
const (
	// MaxDecodedBytes caps the raw bytes decoded from one source: the
	// decompressed contents of a gzip stream, of all npz entries read, or of
	// one array.
	MaxDecodedBytes int64 = 8 << 30

	// MaxValues caps the float32 values of one Dataset's X (8 GiB).
	MaxValues int64 = 2 << 30

	// MaxImagePixels caps the width*height of one PNG or JPEG file. The Go
	// decoders allocate the whole image from the header's dimensions, so a
	// tiny file can otherwise ask for gigabytes.
	MaxImagePixels = 1 << 26

	// MaxClasses caps the number of classes. Class names are made for every
	// label value up to the largest one, so one huge label must not make us
	// allocate millions of names.
	MaxClasses = 1 << 20

	// maxInflateRatio is the most bytes DEFLATE can produce per compressed
	// byte (a 258-byte match coded in 2 bits). A gzip stream or zip entry of
	// n bytes therefore cannot decompress to more than n*maxInflateRatio
	// bytes, which bounds what a lying header can make us allocate.
	maxInflateRatio = 1032

	// maxRank caps the number of dimensions an IDX or NPY header may declare.
	maxRank = 64
)

// product multiplies dims, reporting ok=false if a dimension is negative or
// the product exceeds limit (or the range of int). A zero dimension makes the
// product zero whatever the others are.
func product(dims []int, limit int64) (n int64, ok bool) {
	if limit > math.MaxInt {
		limit = math.MaxInt
	}
	for _, d := range dims {
		if d < 0 {
			return 0, false
		}
		if d == 0 {
			return 0, true
		}
	}
	n = 1
	for _, d := range dims {
		if int64(d) > limit/n {
			return 0, false
		}
		n *= int64(d)
	}
	return n, true
}

// maxInflated is the most bytes a DEFLATE stream of n compressed bytes can
// decompress to (plus slack for headers), saturating instead of overflowing.
func maxInflated(n int64) int64 {
	if n > (math.MaxInt64-4096)/maxInflateRatio {
		return math.MaxInt64
	}
	return n*maxInflateRatio + 4096
}
