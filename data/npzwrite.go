package data

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/bulwark-sec/bulwark/internal/atomicfile"
)

// NPZArray is one entry of an archive written by WriteNPZ. Data is a
// []float32, []int64 or []bool whose length is the product of Shape.
type NPZArray struct {
	Name  string
	Shape []int
	Data  any
}

// WriteNPZ writes arrays to path as a NumPy .npz archive (uncompressed,
// like numpy.savez), atomically. An archive with entries x and y loads back
// as a dataset (`bulwark eval --data file.npz`).
func WriteNPZ(path string, arrays []NPZArray) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		zw := zip.NewWriter(w)
		for _, a := range arrays {
			b, err := encodeNPY(a)
			if err != nil {
				return fmt.Errorf("%s: entry %s: %w", path, a.Name, err)
			}
			f, err := zw.CreateHeader(&zip.FileHeader{Name: a.Name + ".npy", Method: zip.Store})
			if err != nil {
				return err
			}
			if _, err := f.Write(b); err != nil {
				return err
			}
		}
		return zw.Close()
	})
}

// encodeNPY writes a version 1.0 .npy file (little-endian, C order).
func encodeNPY(a NPZArray) ([]byte, error) {
	n := 1
	for _, s := range a.Shape {
		n *= s
	}
	var descr string
	var body bytes.Buffer
	switch d := a.Data.(type) {
	case []float32:
		descr = "<f4"
		if len(d) != n {
			return nil, fmt.Errorf("%d values for shape %v", len(d), a.Shape)
		}
		_ = binary.Write(&body, binary.LittleEndian, d)
	case []int64:
		descr = "<i8"
		if len(d) != n {
			return nil, fmt.Errorf("%d values for shape %v", len(d), a.Shape)
		}
		_ = binary.Write(&body, binary.LittleEndian, d)
	case []bool:
		descr = "|b1"
		if len(d) != n {
			return nil, fmt.Errorf("%d values for shape %v", len(d), a.Shape)
		}
		for _, v := range d {
			if v {
				body.WriteByte(1)
			} else {
				body.WriteByte(0)
			}
		}
	default:
		return nil, fmt.Errorf("unsupported data type %T", a.Data)
	}
	dims := make([]string, len(a.Shape))
	for i, s := range a.Shape {
		dims[i] = fmt.Sprint(s)
	}
	shape := strings.Join(dims, ", ")
	if len(a.Shape) == 1 {
		shape += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape)
	// Pad with spaces so that magic + length + header + '\n' is a multiple
	// of 64, as NumPy does.
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	var out bytes.Buffer
	out.WriteString("\x93NUMPY\x01\x00")
	_ = binary.Write(&out, binary.LittleEndian, uint16(len(header)))
	out.WriteString(header)
	out.Write(body.Bytes())
	return out.Bytes(), nil
}
