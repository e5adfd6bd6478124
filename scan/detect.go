package scan

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// detection is the format a source was recognised as.
type detection struct {
	format string
	// strong is set when the format is certain (magic bytes or an
	// extension that promises it): failing to parse it is then a finding.
	// A weak guess that fails to parse is just not that format.
	strong bool
	// mismatch explains a file whose extension claims a different format
	// than its content, such as a .safetensors file that is a zip.
	mismatch string
	// alsoPickle asks to try the content as a pickle before the claimed
	// format.
	alsoPickle bool
}

// Extensions and what they promise.
var (
	pickleExts = set(".pkl", ".pickle", ".joblib", ".dill", ".pck", ".pt", ".pth", ".ckpt")
	// claimedFormats are extensions of formats that cannot run code: a
	// file so named that is something else is deceptive.
	claimedFormats = map[string]string{
		".safetensors": "safetensors", ".gguf": "gguf", ".onnx": "onnx", ".npy": "numpy",
		".h5": "hdf5", ".hdf5": "hdf5", ".json": "keras-json",
	}
)

// pickleStart are the opcodes a protocol 0 or 1 pickle usually starts with.
var pickleStart = set("(", "c", "]", "}", ")", "N", "I", "S", "V", "l", "d", "K", "J", "X", "U", "T", "G", "F", "L", "i", "P")

// detect recognises a format from the first bytes, the size and the name.
// Magic bytes win over the extension.
func detect(name string, head []byte, size int64, nested bool) detection {
	lower := strings.ToLower(name)
	ext := extOf(lower)
	d := detectMagic(head, size)
	if d.format == "zlib" {
		d.strong = pickleExts[ext] || ext == ".z" || ext == ".zlib"
	}
	if d.format == "pickle" {
		// The PROTO opcode is a two-byte magic: certain enough for a file
		// given to the scanner, or an entry named like a pickle, but a
		// raw tensor inside an archive can start with the same bytes.
		base := pathBase(lower)
		d.strong = !nested || pickleExts[ext] || base == "pickle" || base == "data.pkl" || ext == ".bin"
	}
	if d.format == "" {
		d = detectByName(lower, ext, head, nested)
	}
	if claimed, ok := claimedFormats[ext]; ok && d.format != "" && d.format != claimed && d.strong {
		d.mismatch = "named " + ext + " (" + claimed + ") but the content is " + d.format
	}
	if claimed, ok := claimedFormats[ext]; ok && (d.format == "" || !d.strong) && claimed != "keras-json" {
		// A file that claims a format and is not recognised is parsed as
		// what it claims, so that its failure is reported; a weak pickle
		// guess is tried first.
		return detection{format: claimed, strong: true, alsoPickle: d.format == "pickle"}
	}
	return d
}

func extOf(lower string) string {
	base := pathBase(lower)
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		return base[i:]
	}
	return ""
}

func detectMagic(head []byte, size int64) detection {
	has := func(p string) bool { return bytes.HasPrefix(head, []byte(p)) }
	switch {
	case has("PK\x03\x04"), has("PK\x05\x06"), has("PK\x07\x08"):
		return detection{format: "zip", strong: true}
	case has("\x1f\x8b"):
		return detection{format: "gzip", strong: true}
	case len(head) >= 4 && has("BZh") && head[3] >= '1' && head[3] <= '9':
		return detection{format: "bzip2", strong: true}
	case has("\xfd7zXZ\x00"):
		return detection{format: "xz", strong: true}
	case has("\x28\xb5\x2f\xfd"):
		return detection{format: "zstd", strong: true}
	case len(head) >= 2 && head[0] == 0x78 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 &&
		(head[1] == 0x01 || head[1] == 0x5e || head[1] == 0x9c || head[1] == 0xda):
		// A zlib stream (joblib's default compression). The two-byte
		// header is only a weak sign on its own: decompression decides.
		return detection{format: "zlib"}
	case has("\x93NUMPY"):
		return detection{format: "numpy", strong: true}
	case has("GGUF"):
		return detection{format: "gguf", strong: true}
	case has("\x89HDF\r\n\x1a\n"):
		return detection{format: "hdf5", strong: true}
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return detection{format: "tar", strong: true}
	}
	// safetensors before the pickle magic: a header length whose low byte
	// is 0x80 starts like PROTO.
	if len(head) >= 10 && head[8] == '{' {
		n := binary.LittleEndian.Uint64(head)
		if n >= 2 && size >= 8 && n <= uint64(size-8) {
			return detection{format: "safetensors", strong: true}
		}
	}
	if len(head) >= 2 && head[0] == opPROTO && head[1] <= HighestProtocol {
		return detection{format: "pickle"}
	}
	return detection{}
}

func detectByName(lower, ext string, head []byte, nested bool) detection {
	base := pathBase(lower)
	switch {
	case base == "saved_model.pb":
		return detection{format: "tf-savedmodel", strong: true}
	case base == "keras_metadata.pb":
		return detection{format: "keras-metadata", strong: true}
	case ext == ".pb":
		return detection{format: "tf-graph"}
	case ext == ".onnx":
		return detection{format: "onnx", strong: true}
	case ext == ".json":
		return detection{format: "keras-json"}
	case pickleExts[ext] || base == "pickle" || base == "data.pkl":
		return detection{format: "pickle", strong: true}
	case ext == ".zip" || ext == ".npz" || ext == ".keras" || ext == ".pt" || ext == ".pth":
		return detection{format: "zip", strong: true}
	case ext == ".tar":
		return detection{format: "tar", strong: true}
	case ext == ".gz" || ext == ".tgz":
		return detection{format: "gzip", strong: true}
	case ext == ".bz2":
		return detection{format: "bzip2", strong: true}
	}
	if len(head) > 0 && pickleStart[string(head[:1])] {
		return detection{format: "pickle"}
	}
	return detection{}
}
