package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bulwark-sec/bulwark/model/onnx/onnxpb"
)

// Limits that keep a hostile file from making the importer allocate or loop
// without bound. Tensor data is always bounded by the bytes actually present
// (in the model or in an external data file); these cap the rest.
const (
	maxNodes        = 100_000
	maxInitializers = 100_000
	maxRank         = 16
	maxDim          = 1<<31 - 1 // largest single dimension
	maxNumel        = 1 << 40   // largest element count of an inferred shape
	maxAttrValue    = 1 << 24   // largest stride, pad, kernel or dilation
)

// batchMark stands for the batch size inside int64 shape vectors produced by
// folding a Shape node: it is the run-time value of the batch dimension.
const batchMark = math.MinInt64

// batchDim marks the batch axis inside an inferred shape.
const batchDim = -1

// tensor is a constant known at import time: an initializer, a Constant node
// or the result of folding. Tensors are never modified once built, so folding
// may share their data.
type tensor struct {
	shape []int     // static, no batchDim
	isInt bool      // integer (or bool) data in i, else float data in f
	f     []float32 // float data, row-major
	i     []int64   // integer data, row-major; may hold batchMark
}

func (t *tensor) numel() int {
	if t.isInt {
		return len(t.i)
	}
	return len(t.f)
}

// hasMark reports whether an integer tensor carries the batch size.
func (t *tensor) hasMark() bool {
	if !t.isInt {
		return false
	}
	for _, v := range t.i {
		if v == batchMark {
			return true
		}
	}
	return false
}

// floats returns the data as float32 (integers converted).
func (t *tensor) floats() ([]float32, error) {
	if !t.isInt {
		return t.f, nil
	}
	out := make([]float32, len(t.i))
	for k, v := range t.i {
		if v == batchMark {
			return nil, errors.New("it holds the run-time batch size, which is not a constant")
		}
		out[k] = float32(v)
	}
	return out, nil
}

// ints returns the data as int64 (floats truncated toward zero).
func (t *tensor) ints() ([]int64, error) {
	if t.isInt {
		return t.i, nil
	}
	out := make([]int64, len(t.f))
	for k, v := range t.f {
		if v != v || v >= 9.2e18 || v <= -9.2e18 {
			return nil, fmt.Errorf("value %v cannot be an integer", v)
		}
		out[k] = int64(v)
	}
	return out, nil
}

// ONNX TensorProto.DataType values used here.
const (
	dtFloat    = int32(onnxpb.TensorProto_FLOAT)
	dtUint8    = int32(onnxpb.TensorProto_UINT8)
	dtInt8     = int32(onnxpb.TensorProto_INT8)
	dtUint16   = int32(onnxpb.TensorProto_UINT16)
	dtInt16    = int32(onnxpb.TensorProto_INT16)
	dtInt32    = int32(onnxpb.TensorProto_INT32)
	dtInt64    = int32(onnxpb.TensorProto_INT64)
	dtBool     = int32(onnxpb.TensorProto_BOOL)
	dtFloat16  = int32(onnxpb.TensorProto_FLOAT16)
	dtDouble   = int32(onnxpb.TensorProto_DOUBLE)
	dtBfloat16 = int32(onnxpb.TensorProto_BFLOAT16)
)

func dtypeName(dt int32) string {
	if s, ok := onnxpb.TensorProto_DataType_name[dt]; ok {
		return s
	}
	return strconv.Itoa(int(dt))
}

// elemSize is the size in raw_data of one element, 0 for unsupported types.
func elemSize(dt int32) int {
	switch dt {
	case dtFloat, dtInt32:
		return 4
	case dtDouble, dtInt64:
		return 8
	case dtFloat16, dtBfloat16, dtInt16, dtUint16:
		return 2
	case dtInt8, dtUint8, dtBool:
		return 1
	}
	return 0
}

func isFloatType(dt int32) bool {
	return dt == dtFloat || dt == dtDouble || dt == dtFloat16 || dt == dtBfloat16
}

// checkedNumel multiplies dims, failing on negative values or overflow past limit.
func checkedNumel(dims []int64, limit int64) (int64, error) {
	if len(dims) > maxRank {
		return 0, fmt.Errorf("rank %d is above the limit of %d", len(dims), maxRank)
	}
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in %v", d, dims)
		}
		if d > maxDim {
			return 0, fmt.Errorf("dimension %d in %v is too large", d, dims)
		}
		if d != 0 && n > limit/d {
			return 0, fmt.Errorf("shape %v has too many elements", dims)
		}
		n *= d
	}
	return n, nil
}

// decodeTensor turns a TensorProto into a tensor, checking that the data
// agrees with the dims. what names the tensor in errors.
func (p *parser) decodeTensor(t *onnxpb.TensorProto, what string) (*tensor, error) {
	dt := t.GetDataType()
	size := elemSize(dt)
	if size == 0 {
		return nil, fmt.Errorf("tensor %q: data type %s is not supported", what, dtypeName(dt))
	}
	if t.Segment != nil {
		return nil, fmt.Errorf("tensor %q: segmented tensors are not supported", what)
	}
	n64, err := checkedNumel(t.GetDims(), maxNumel)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %v", what, err)
	}
	shape := make([]int, len(t.GetDims()))
	for k, d := range t.GetDims() {
		shape[k] = int(d)
	}

	raw := t.GetRawData()
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		if len(raw) > 0 || typedCount(t) > 0 {
			return nil, fmt.Errorf("tensor %q: external data together with inline data", what)
		}
		if n64 > math.MaxInt64/int64(size) {
			return nil, fmt.Errorf("tensor %q: too large", what)
		}
		raw, err = p.externalData(t, what, n64*int64(size))
		if err != nil {
			return nil, err
		}
	} else if t.GetDataLocation() != onnxpb.TensorProto_DEFAULT {
		return nil, fmt.Errorf("tensor %q: unknown data_location %d", what, t.GetDataLocation())
	}

	out := &tensor{shape: shape, isInt: !isFloatType(dt)}
	if len(raw) > 0 {
		if typedCount(t) > 0 {
			return nil, fmt.Errorf("tensor %q: both raw_data and typed data are set", what)
		}
		if int64(len(raw)) != n64*int64(size) {
			return nil, fmt.Errorf("tensor %q: raw_data has %d bytes, shape %v of %s needs %d", what, len(raw), shape, dtypeName(dt), n64*int64(size))
		}
		decodeRaw(out, dt, raw, int(n64))
		return out, checkInts(out, what)
	}

	var count int
	switch dt {
	case dtFloat:
		count = len(t.GetFloatData())
	case dtDouble:
		count = len(t.GetDoubleData())
	case dtInt64:
		count = len(t.GetInt64Data())
	default: // int32_data holds FLOAT16, BFLOAT16 (as bits) and the small integer types
		count = len(t.GetInt32Data())
	}
	if typedCount(t) != count {
		return nil, fmt.Errorf("tensor %q: data stored in a field that does not match its type %s", what, dtypeName(dt))
	}
	if int64(count) != n64 {
		return nil, fmt.Errorf("tensor %q: has %d values, shape %v needs %d", what, count, shape, n64)
	}
	switch dt {
	case dtFloat:
		out.f = append([]float32(nil), t.GetFloatData()...)
	case dtDouble:
		out.f = make([]float32, count)
		for k, v := range t.GetDoubleData() {
			out.f[k] = float32(v)
		}
	case dtFloat16:
		out.f = make([]float32, count)
		for k, v := range t.GetInt32Data() {
			out.f[k] = halfToFloat(uint16(v))
		}
	case dtBfloat16:
		out.f = make([]float32, count)
		for k, v := range t.GetInt32Data() {
			out.f[k] = math.Float32frombits(uint32(uint16(v)) << 16)
		}
	case dtInt64:
		out.i = append([]int64(nil), t.GetInt64Data()...)
	default:
		out.i = make([]int64, count)
		for k, v := range t.GetInt32Data() {
			out.i[k] = int64(v)
		}
	}
	if out.isInt && out.i == nil {
		out.i = []int64{}
	}
	if !out.isInt && out.f == nil {
		out.f = []float32{}
	}
	return out, checkInts(out, what)
}

func checkInts(t *tensor, what string) error {
	if t.hasMark() {
		return fmt.Errorf("tensor %q: integer value out of range", what)
	}
	return nil
}

// typedCount is the number of values in all typed data fields together.
func typedCount(t *onnxpb.TensorProto) int {
	return len(t.GetFloatData()) + len(t.GetInt32Data()) + len(t.GetStringData()) +
		len(t.GetInt64Data()) + len(t.GetDoubleData()) + len(t.GetUint64Data())
}

// decodeRaw fills out from little-endian raw bytes; len(raw) == n*elemSize(dt).
func decodeRaw(out *tensor, dt int32, raw []byte, n int) {
	le := binary.LittleEndian
	if out.isInt {
		out.i = make([]int64, n)
	} else {
		out.f = make([]float32, n)
	}
	for k := 0; k < n; k++ {
		switch dt {
		case dtFloat:
			out.f[k] = math.Float32frombits(le.Uint32(raw[4*k:]))
		case dtDouble:
			out.f[k] = float32(math.Float64frombits(le.Uint64(raw[8*k:])))
		case dtFloat16:
			out.f[k] = halfToFloat(le.Uint16(raw[2*k:]))
		case dtBfloat16:
			out.f[k] = math.Float32frombits(uint32(le.Uint16(raw[2*k:])) << 16)
		case dtInt64:
			out.i[k] = int64(le.Uint64(raw[8*k:]))
		case dtInt32:
			out.i[k] = int64(int32(le.Uint32(raw[4*k:])))
		case dtInt16:
			out.i[k] = int64(int16(le.Uint16(raw[2*k:])))
		case dtUint16:
			out.i[k] = int64(le.Uint16(raw[2*k:]))
		case dtInt8:
			out.i[k] = int64(int8(raw[k]))
		case dtUint8, dtBool:
			out.i[k] = int64(raw[k])
		}
	}
}

// halfToFloat converts IEEE 754 binary16 bits to float32.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// subnormal: mant * 2^-24
	f := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		f = -f
	}
	return f
}

// externalData reads the bytes of a tensor stored outside the model file. The
// file must lie inside p.dir, also after resolving symbolic links.
func (p *parser) externalData(t *onnxpb.TensorProto, what string, need int64) ([]byte, error) {
	var location string
	offset, length := int64(0), int64(-1)
	for _, kv := range t.GetExternalData() {
		var err error
		switch kv.GetKey() {
		case "location":
			location = kv.GetValue()
		case "offset":
			offset, err = strconv.ParseInt(kv.GetValue(), 10, 64)
			if err == nil && offset < 0 {
				err = errors.New("negative")
			}
		case "length":
			length, err = strconv.ParseInt(kv.GetValue(), 10, 64)
			if err == nil && length < 0 {
				err = errors.New("negative")
			}
		}
		if err != nil {
			return nil, fmt.Errorf("tensor %q: external data %s %q: %v", what, kv.GetKey(), kv.GetValue(), err)
		}
	}
	if location == "" {
		return nil, fmt.Errorf("tensor %q: external data without a location", what)
	}
	if p.dir == "" {
		return nil, fmt.Errorf("tensor %q: external data file %q is not allowed here (no model directory given)", what, location)
	}
	path, err := resolveInside(p.dir, location)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: external data file %q: %v", what, location, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: external data: %v", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("tensor %q: external data: %v", what, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("tensor %q: external data file %q is not a regular file", what, location)
	}
	size := st.Size()
	if offset > size {
		return nil, fmt.Errorf("tensor %q: external data offset %d is past the end of %q (%d bytes)", what, offset, location, size)
	}
	if length < 0 {
		length = size - offset
		if length > need { // data of several tensors in one file: take what the shape says
			length = need
		}
	}
	if length > size-offset {
		return nil, fmt.Errorf("tensor %q: external data [%d, +%d) runs past the end of %q (%d bytes)", what, offset, length, location, size)
	}
	if length != need {
		return nil, fmt.Errorf("tensor %q: external data has %d bytes, its shape and type need %d", what, length, need)
	}
	buf := make([]byte, length)
	if _, err := f.ReadAt(buf, offset); err != nil && !(errors.Is(err, io.EOF) && length == 0) {
		return nil, fmt.Errorf("tensor %q: reading external data %q: %v", what, location, err)
	}
	return buf, nil
}

// resolveInside joins a relative location to dir and makes sure the result,
// with symbolic links resolved, is still inside dir.
func resolveInside(dir, location string) (string, error) {
	if strings.ContainsRune(location, 0) {
		return "", errors.New("location contains a NUL byte")
	}
	if filepath.IsAbs(location) || strings.HasPrefix(location, "/") || strings.HasPrefix(location, `\`) || filepath.VolumeName(location) != "" {
		return "", errors.New("absolute locations are not allowed")
	}
	joined := filepath.Join(dir, location)
	if !within(filepath.Clean(dir), joined) {
		return "", errors.New("location leaves the model directory")
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	realFile, err := filepath.EvalSymlinks(joined)
	if err != nil {
		return "", err
	}
	if !within(realDir, realFile) {
		return "", errors.New("location leaves the model directory through a symbolic link")
	}
	return realFile, nil
}

func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
