package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"testing"
)

// torchWiden makes PyTorch widen every 16-bit pattern to float32, as float16
// and then as bfloat16, and write the float32 bits.
const torchWiden = `
import sys, torch
bits = torch.arange(65536, dtype=torch.int32).to(torch.int16)
for dt in (torch.float16, torch.bfloat16):
    wide = bits.view(dt).float().view(torch.int32)
    sys.stdout.buffer.write(wide.numpy().astype('<i4').tobytes())
`

// TestFloat32AgainstTorch compares the F16 and BF16 conversions with
// PyTorch's for all 65536 bit patterns. NaNs only need to stay NaN: how the
// payload and quiet bit carry over is not something callers rely on. It is
// skipped when /usr/bin/python3 or its torch package is missing.
func TestFloat32AgainstTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts python")
	}
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	var out bytes.Buffer
	cmd := exec.Command(python, "-c", torchWiden)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Skipf("python3 with torch did not run: %v", err)
	}
	if out.Len() != 2*4*65536 {
		t.Fatalf("torch wrote %d bytes", out.Len())
	}
	data := make([]byte, 2*65536)
	for i := range 65536 {
		binary.LittleEndian.PutUint16(data[2*i:], uint16(i))
	}
	for k, dtype := range []DType{DTypeF16, DTypeBF16} {
		want := out.Bytes()[k*4*65536:]
		tn := Tensor{Name: string(dtype), DType: dtype, Shape: []int{65536}, Data: data}
		got, err := tn.Float32()
		if err != nil {
			t.Fatal(err)
		}
		bad := 0
		for i, g := range got {
			wbits := binary.LittleEndian.Uint32(want[4*i:])
			w := math.Float32frombits(wbits)
			if w != w && g != g {
				continue // both NaN
			}
			if math.Float32bits(g) != wbits {
				if bad++; bad <= 5 {
					t.Errorf("%s %#04x: got %g (%08x), torch %g (%08x)", dtype, i, g, math.Float32bits(g), w, wbits)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of 65536 patterns differ from torch", dtype, bad)
		}
	}
}
