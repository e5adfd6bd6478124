package safetensors

import (
	"encoding/binary"
	"math"
)

// F32 builds an F32 tensor from float32 values. It copies shape and data, and
// does not check that they agree: Encode and WriteFile do, with an error rather
// than a panic.
func F32(name string, shape []int, data []float32) Tensor {
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return Tensor{Name: name, DType: DTypeF32, Shape: append([]int{}, shape...), Data: b}
}

// checkData reports whether the tensor's data length matches its dtype and
// shape. Tensors from Parse always do; hand-built ones may not.
func (t *Tensor) checkData() error {
	want, err := byteSize(t.Name, t.DType, t.Shape)
	if err != nil {
		return err
	}
	if int64(len(t.Data)) != want {
		return formatErr("tensor %q: data is %d bytes but shape %v of dtype %s needs %d bytes", shorten(t.Name), len(t.Data), shortenShape(t.Shape), t.DType, want)
	}
	return nil
}

// Float32 returns the elements as float32. F32 is decoded as is; F64 is
// rounded to the nearest float32; F16 and BF16 are widened exactly. Other
// dtypes are refused rather than converted, because an integer or 8-bit float
// tensor read as float32 is almost always a caller's mistake.
func (t *Tensor) Float32() ([]float32, error) {
	switch t.DType {
	case DTypeF32, DTypeF64, DTypeF16, DTypeBF16:
	default:
		return nil, formatErr("tensor %q has dtype %s; Float32 converts only F32, F64, F16 and BF16", shorten(t.Name), shorten(string(t.DType)))
	}
	if err := t.checkData(); err != nil {
		return nil, err
	}
	d := t.Data
	switch t.DType {
	case DTypeF32:
		out := make([]float32, len(d)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
		return out, nil
	case DTypeF64:
		out := make([]float32, len(d)/8)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:])))
		}
		return out, nil
	case DTypeF16:
		out := make([]float32, len(d)/2)
		for i := range out {
			out[i] = f16ToF32(binary.LittleEndian.Uint16(d[2*i:]))
		}
		return out, nil
	default: // BF16
		out := make([]float32, len(d)/2)
		for i := range out {
			out[i] = bf16ToF32(binary.LittleEndian.Uint16(d[2*i:]))
		}
		return out, nil
	}
}

// bf16ToF32 widens a bfloat16: it is the top half of a float32, so the
// conversion is a shift.
func bf16ToF32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// f16ToF32 widens an IEEE 754 half-precision float. Every half value,
// subnormals included, is exactly representable as a float32.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0x1f:
		// Infinity or NaN: keep the mantissa so NaN payloads survive.
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0:
		// Zero or subnormal: the value is mant * 2^-24, which float32
		// holds exactly (mant has at most 10 bits; 2^-24 is a power of two).
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	default:
		// Normal: rebias the exponent from 15 to 127.
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	}
}
