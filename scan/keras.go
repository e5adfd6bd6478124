package scan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// Keras models describe their layers in a JSON config: config.json inside a
// .keras zip, the model_config attribute of an .h5 file, strings inside a
// SavedModel's keras_metadata.pb. A Lambda layer carries Python bytecode
// (marshal, base64) that runs when the model is built, and custom objects
// name classes and functions outside Keras that the loader imports.

// scanKerasJSON parses a Keras config. inKeras says the file came from a
// .keras archive (so it must parse); a loose .json file that is not a Keras
// config is not a model and is skipped.
func (fsn *fileScan) scanKerasJSON(src source, inKeras bool) bool {
	b, err := readAll(src, fsn.lim.MaxConfig)
	if err != nil {
		if inKeras {
			fsn.unparseable(src, "keras", -1, "config.json: "+err.Error())
			return true
		}
		return false
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		if inKeras {
			fsn.unparseable(src, "keras", -1, "config.json: "+err.Error())
			return true
		}
		return false
	}
	if !inKeras {
		m, ok := v.(map[string]any)
		if !ok || m["class_name"] == nil || m["config"] == nil {
			return false
		}
	}
	fsn.walkKeras(src, v, "", 0)
	return true
}

// walkKeras reports Lambda layers and custom objects in a parsed config.
func (fsn *fileScan) walkKeras(src source, v any, where string, depth int) {
	if depth > 256 {
		return
	}
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			fsn.walkKeras(src, e, fmt.Sprintf("%s[%d]", where, i), depth+1)
		}
	case map[string]any:
		cls, _ := x["class_name"].(string)
		here := where
		if cfg, ok := x["config"].(map[string]any); ok {
			if name, ok := cfg["name"].(string); ok {
				here = where + "/" + name
			}
		}
		switch {
		case cls == "Lambda" || (cls == "__lambda__" && !strings.Contains(where, "<lambda>")):
			f := fsn.add(src, "keras", -1, SeverityHigh, "scan.keras.lambda",
				fmt.Sprintf("Lambda layer %s carries Python bytecode that runs when the model is loaded (safe_mode=False) or built", strings.TrimPrefix(here, "/")))
			f.Module, f.Name, f.Args = "keras.layers", "Lambda", lambdaCode(x)
			f.ATLAS = append([]string(nil), atlasCode...)
			// The function inside the layer is the same finding.
			here += "<lambda>"
		case cls != "":
			mod, _ := x["module"].(string)
			reg, _ := x["registered_name"].(string)
			custom := (mod != "" && mod != "builtins" && mod != "keras" && !strings.HasPrefix(mod, "keras.")) ||
				strings.Contains(reg, ">")
			if custom {
				f := fsn.add(src, "keras", -1, SeverityMedium, "scan.keras.custom-object",
					fmt.Sprintf("custom object %s (module %q, registered as %q) at %s: loading imports and runs code outside Keras", cls, mod, reg, strings.TrimPrefix(here, "/")))
				f.Module, f.Name = mod, cls
			}
		}
		for _, k := range sortedKeys(x) {
			fsn.walkKeras(src, x[k], here, depth+1)
		}
	}
}

// lambdaCode shows the start of a Lambda's function.
func lambdaCode(m map[string]any) string {
	var fn any
	if cfg, ok := m["config"].(map[string]any); ok {
		fn = cfg["function"]
	}
	if fn == nil {
		fn = m["config"]
	}
	b, _ := json.Marshal(fn)
	s := string(b)
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// lambdaPattern finds a Lambda layer in serialized Keras JSON.
var lambdaPattern = regexp.MustCompile(`"class_name"\s*:\s*"(Lambda|__lambda__)"`)

// scanHDF5 looks for Lambda layers in a Keras .h5 file without an HDF5
// parser: Keras stores the model config as one JSON string attribute
// (model_config), which h5py writes uncompressed, so its text appears
// verbatim in the file. The file is searched in windows for the JSON of a
// Lambda layer. Limits: attributes stored compressed or split by a custom
// writer are not seen, and custom objects are not reported for .h5 (only
// Lambda layers), since the surrounding JSON is not parsed.
func (fsn *fileScan) scanHDF5(src source) {
	if !hdf5Signature(src) {
		fsn.unparseable(src, "hdf5", 0, "no HDF5 signature at offset 0, 512, 1024, ... (the superblock)")
		return
	}
	fsn.scanKerasStrings(src, "hdf5")
}

// hdf5Signature looks for the superblock signature where HDF5 allows it:
// offset 0, 512, 1024, 2048 and so on (after a user block).
func hdf5Signature(src source) bool {
	sig := []byte("\x89HDF\r\n\x1a\n")
	var b [8]byte
	for off := int64(0); off+8 <= src.size; {
		if n, _ := src.r.ReadAt(b[:], off); n == 8 && bytes.Equal(b[:], sig) {
			return true
		}
		if off == 0 {
			off = 512
		} else {
			off *= 2
		}
	}
	return false
}

// scanKerasStrings searches src for the JSON of Lambda layers.
func (fsn *fileScan) scanKerasStrings(src source, format string) {
	const chunk = 1 << 20
	const overlap = 256
	buf := make([]byte, chunk+overlap)
	seen := map[int64]bool{}
	lastLambda := int64(-1 << 40)
	for off := int64(0); off < src.size; off += chunk {
		if fsn.ctx.Err() != nil {
			return
		}
		n, err := src.r.ReadAt(buf, off)
		if n == 0 && err != nil {
			if off == 0 || !errors.Is(err, io.EOF) {
				fsn.ioError(src, err)
			}
			return
		}
		for _, loc := range lambdaPattern.FindAllIndex(buf[:n], -1) {
			at := off + int64(loc[0])
			if seen[at] {
				continue
			}
			seen[at] = true
			// A layer's function ("__lambda__") follows the layer itself
			// ("Lambda"): one finding for both.
			if strings.Contains(string(buf[loc[0]:loc[1]]), "__lambda__") && at-lastLambda < 4096 {
				continue
			}
			if !strings.Contains(string(buf[loc[0]:loc[1]]), "__lambda__") {
				lastLambda = at
			}
			snippet := buf[loc[1]:min(n, loc[1]+200)]
			f := fsn.add(src, format, at, SeverityHigh, "scan.keras.lambda",
				"Keras Lambda layer in the model config: it carries Python bytecode that runs when the model is loaded (safe_mode=False) or built")
			f.Module, f.Name, f.Args = "keras.layers", "Lambda", strings.ToValidUTF8(string(snippet), "?")
			f.ATLAS = append([]string(nil), atlasCode...)
			if len(seen) > 1000 {
				return
			}
		}
	}
}
