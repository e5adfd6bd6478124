package scan

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"

	"github.com/bulwark-sec/bulwark/model/safetensors"
)

// safetensors cannot run code; what can go wrong is structure. The strict
// parser of model/safetensors reads the header only (a multi-GiB file
// costs its header), so every violation it reports is a finding. One of
// them is singled out: bytes after the last tensor are where a polyglot
// file keeps a second format (a zip or a pickle that another loader will
// open), so they are located and scanned as a file of their own.

// codeLike matches metadata values that look like code or a serialized
// payload; safetensors loaders never interpret metadata, but tools built on
// it sometimes do, so these are notices.
var codeLike = regexp.MustCompile(`(?i)(__import__|\bimport\s+(os|subprocess|sys)\b|os\.system|subprocess\.|\beval\s*\(|\bexec\s*\(|<script|^#!/|pickle\.loads|base64\.b64decode|^gASV|^gAN|^gAJ)`)

func (fsn *fileScan) scanSafetensors(src source) {
	h, err := safetensors.ParseHeader(src.r, src.size)
	if err != nil {
		var fe *safetensors.FormatError
		if !errors.As(err, &fe) {
			fsn.ioError(src, err)
			return
		}
		if !fsn.safetensorsTrailing(src) {
			fsn.add(src, "safetensors", -1, SeverityMedium, "scan.safetensors.malformed",
				"malformed, refused by the strict parser (and not loadable without ambiguity): "+fe.Msg)
		}
		return
	}
	keys := make([]string, 0, len(h.Metadata))
	for k := range h.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := h.Metadata[k]; codeLike.MatchString(v) {
			show := v
			if len(show) > 120 {
				show = show[:120] + "…"
			}
			f := fsn.add(src, "safetensors", 8, SeverityInfo, "scan.safetensors.metadata-code",
				fmt.Sprintf("__metadata__ value %q looks like code or a serialized payload; safetensors never runs it, but check any tool that reads it", k))
			f.Args = show
		}
	}
	for _, ig := range h.Ignored {
		fsn.add(src, "safetensors", 8, SeverityInfo, "scan.safetensors.ignored-field",
			fmt.Sprintf("tensor %q has a key %q the format does not define; loaders ignore it, so it can carry hidden data", ig.Tensor, ig.Key))
	}
}

// safetensorsTrailing decodes the header leniently to find where the
// tensors end; if bytes follow, it reports a polyglot file and scans them.
func (fsn *fileScan) safetensorsTrailing(src source) bool {
	var pre [8]byte
	if k, _ := src.r.ReadAt(pre[:], 0); k < 8 {
		return false
	}
	n := binary.LittleEndian.Uint64(pre[:])
	if n == 0 || n > safetensors.MaxHeaderSize || n > uint64(src.size-8) {
		return false
	}
	hdr := make([]byte, n)
	if k, _ := src.r.ReadAt(hdr, 8); uint64(k) < n {
		return false
	}
	var entries map[string]json.RawMessage
	if json.Unmarshal(hdr, &entries) != nil {
		return false
	}
	var end uint64
	for name, raw := range entries {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			Offsets []uint64 `json:"data_offsets"`
		}
		if json.Unmarshal(raw, &e) != nil || len(e.Offsets) != 2 {
			return false
		}
		end = max(end, e.Offsets[1])
	}
	dataStart := 8 + int64(n)
	if end > uint64(src.size-dataStart) {
		return false
	}
	tail := dataStart + int64(end)
	if tail >= src.size {
		return false
	}
	fsn.add(src, "safetensors", tail, SeverityHigh, "scan.safetensors.polyglot",
		fmt.Sprintf("%d bytes after the last tensor (offset %d): safetensors loaders ignore them, other loaders may open them as another format (polyglot file)", src.size-tail, tail))
	fsn.scanTrailing(src, tail)
	return true
}
