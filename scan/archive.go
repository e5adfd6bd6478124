package scan

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// Archives are opened recursively. Stored entries (PyTorch zips store their
// tensors uncompressed) are read in place through a section of the parent;
// compressed ones are decompressed into memory up to Limits.MaxInMemory and
// into a temporary file beyond, within the per-file budget
// Limits.MaxDecompressed. A decompression bomb is a finding, never a crash.

// enterArchive checks the depth before opening an archive found in src.
func (fsn *fileScan) enterArchive(src source, format string) bool {
	if src.depth >= fsn.lim.MaxDepth {
		fsn.add(src, format, -1, SeverityMedium, "scan.archive.limit",
			fmt.Sprintf("archive nested %d deep, past the limit of %d: its content was not scanned", src.depth+1, fsn.lim.MaxDepth))
		return false
	}
	return true
}

// countEntry counts an archive entry against the per-file limit.
func (fsn *fileScan) countEntry(src source, format string) bool {
	fsn.entries++
	if fsn.entries == fsn.lim.MaxEntries+1 {
		fsn.add(src, format, -1, SeverityMedium, "scan.archive.limit",
			fmt.Sprintf("more than %d archive entries: the rest were not scanned", fsn.lim.MaxEntries))
	}
	return fsn.entries <= fsn.lim.MaxEntries
}

// unsafeEntryName reports names that extraction would write outside the
// target folder (zip slip).
func (fsn *fileScan) checkEntryName(src source, format, name string) {
	n := strings.ReplaceAll(name, "\\", "/")
	bad := strings.HasPrefix(n, "/") || (len(n) >= 2 && n[1] == ':')
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			bad = true
		}
	}
	if bad {
		fsn.add(src, format, -1, SeverityMedium, "scan.archive.path-traversal",
			fmt.Sprintf("entry %q would be extracted outside the target folder (absolute path or \"..\")", name))
	}
}

func (fsn *fileScan) scanZip(src source) {
	if !fsn.enterArchive(src, "zip") {
		return
	}
	// archive/zip keeps every directory entry in memory: count them first.
	if n, ok := zipEntryCount(src.r, src.size); ok && n > uint64(fsn.lim.MaxEntries) {
		fsn.add(src, "zip", -1, SeverityMedium, "scan.archive.limit",
			fmt.Sprintf("zip directory lists %d entries, more than the limit of %d: not opened", n, fsn.lim.MaxEntries))
		return
	}
	zr, err := zip.NewReader(src.r, src.size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		fsn.unparseable(src, "zip", -1, err.Error())
		return
	}
	names := map[string]bool{}
	for _, f := range zr.File {
		names[f.Name] = true
	}
	keras := names["config.json"] && (names["metadata.json"] || names["model.weights.h5"])
	// In a PyTorch zip, <root>/data/<key> entries are raw tensor bytes that
	// torch.load copies and never unpickles: guessing formats in them only
	// risks false alarms on random floats.
	torchRoots := map[string]bool{}
	for n := range names {
		if root, ok := strings.CutSuffix(n, "/data.pkl"); ok && !strings.Contains(root, "/") {
			torchRoots[root] = true
		}
	}
	fsn.checkZipOverlap(src, zr)

	for n := range names {
		if root, _, ok := strings.Cut(n, "/code/"); ok && torchRoots[root] {
			fsn.add(src, "torchscript", -1, SeverityInfo, "scan.torchscript.code",
				"TorchScript archive: torch.jit.load compiles and runs the TorchScript source in "+root+"/code/, which this scanner does not analyse (TorchScript cannot import Python modules, but can call any registered torch operator)")
			break
		}
	}
	for _, f := range zr.File {
		if !fsn.countEntry(src, "zip") {
			return
		}
		fsn.checkEntryName(src, "zip", f.Name)
		if f.Mode()&os.ModeSymlink != 0 {
			fsn.add(src, "zip", -1, SeverityMedium, "scan.archive.symlink",
				fmt.Sprintf("entry %q is a symbolic link: extracting it lets later entries write through it", f.Name))
			continue
		}
		if f.FileInfo().IsDir() {
			continue
		}
		if f.CompressedSize64 > 0 && f.UncompressedSize64 > 1<<20 && f.UncompressedSize64/f.CompressedSize64 > 1100 {
			fsn.add(src, "zip", -1, SeverityHigh, "scan.archive.bomb",
				fmt.Sprintf("entry %q declares %d bytes from %d compressed, a ratio no single deflate layer reaches: a decompression bomb or a lying header", f.Name, f.UncompressedSize64, f.CompressedSize64))
			continue
		}
		if root, rest, ok := strings.Cut(f.Name, "/data/"); ok && torchRoots[root] && !strings.Contains(rest, "/") && !strings.HasSuffix(rest, ".pkl") {
			continue
		}
		child, cleanup, ok := fsn.openZipEntry(src, f)
		if !ok {
			if fsn.stopped {
				return
			}
			continue
		}
		if keras && f.Name == "config.json" {
			fsn.scanKerasJSON(child, true)
		} else {
			fsn.scanSource(child)
		}
		cleanup()
	}
}

// checkZipOverlap reports entries whose data overlap: the trick behind
// non-recursive zip bombs, and a way for two unzip tools to disagree.
func (fsn *fileScan) checkZipOverlap(src source, zr *zip.Reader) {
	type span struct {
		start, end int64
		name       string
	}
	var spans []span
	for _, f := range zr.File {
		off, err := f.DataOffset()
		if err != nil || f.CompressedSize64 == 0 {
			continue
		}
		spans = append(spans, span{off, off + int64(f.CompressedSize64), f.Name})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			fsn.add(src, "zip", -1, SeverityHigh, "scan.archive.overlap",
				fmt.Sprintf("entries %q and %q share compressed data: an overlapping-entry zip bomb or a file built to make unzip tools disagree", spans[i-1].name, spans[i].name))
			return
		}
	}
}

// openZipEntry returns a source for the entry: a section of the parent for
// stored entries, decompressed data otherwise.
func (fsn *fileScan) openZipEntry(src source, f *zip.File) (source, func(), bool) {
	if f.Method == zip.Store && f.Flags&1 == 0 {
		if off, err := f.DataOffset(); err == nil && f.CompressedSize64 == f.UncompressedSize64 &&
			off >= 0 && int64(f.CompressedSize64) <= src.size-off {
			n := int64(f.UncompressedSize64)
			return src.child(f.Name, io.NewSectionReader(src.r, off, n), n, off), func() {}, true
		}
	}
	if fsn.stopped {
		return source{}, nil, false
	}
	rc, err := f.Open()
	if err != nil {
		fsn.unparseable(src, "zip", -1, fmt.Sprintf("entry %q: %v", f.Name, err))
		return source{}, nil, false
	}
	defer rc.Close()
	ra, n, cleanup, ok := fsn.spool(src, "zip", f.Name, rc)
	if !ok {
		return source{}, nil, false
	}
	return src.child(f.Name, ra, n, -1), cleanup, true
}

// spool decompresses r into memory or a temporary file within the budget.
func (fsn *fileScan) spool(src source, format, name string, r io.Reader) (io.ReaderAt, int64, func(), bool) {
	budget := fsn.lim.MaxDecompressed - fsn.decompressed
	cr := &countingReader{r: r, fsn: fsn}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(cr, min(budget, fsn.lim.MaxInMemory)+1))
	if err == nil && n > fsn.lim.MaxInMemory && !fsn.stopped {
		// Too large for memory: continue into a temporary file.
		tmp, terr := os.CreateTemp("", "bulwark-scan-*")
		if terr != nil {
			fsn.ioError(src, fmt.Errorf("entry %q: %w", name, terr))
			return nil, 0, nil, false
		}
		cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
		if _, werr := tmp.Write(buf.Bytes()); werr != nil {
			cleanup()
			fsn.ioError(src, werr)
			return nil, 0, nil, false
		}
		buf = bytes.Buffer{}
		m, cerr := io.Copy(tmp, io.LimitReader(cr, budget-n+1))
		n += m
		if cerr != nil {
			cleanup()
			fsn.decodeError(src, format, name, cerr)
			return nil, 0, nil, false
		}
		if fsn.overBudget(src, format, name, n, budget) {
			cleanup()
			return nil, 0, nil, false
		}
		return tmp, n, cleanup, true
	}
	if err != nil {
		fsn.decodeError(src, format, name, err)
		return nil, 0, nil, false
	}
	if fsn.overBudget(src, format, name, n, budget) {
		return nil, 0, nil, false
	}
	b := buf.Bytes()
	return bytes.NewReader(b), int64(len(b)), func() {}, true
}

// decodeError reports a decompression failure, unless it is the stop that
// a bomb caused.
func (fsn *fileScan) decodeError(src source, format, name string, err error) {
	if errors.Is(err, errBomb) {
		return
	}
	fsn.unparseable(src, format, -1, fmt.Sprintf("entry %q: %v", name, err))
}

// overBudget reports an entry that decompressed past the budget.
func (fsn *fileScan) overBudget(src source, format, name string, n, budget int64) bool {
	if n <= budget && !fsn.stopped {
		return false
	}
	if !fsn.stopped {
		fsn.stopped = true
		fsn.add(src, format, -1, SeverityMedium, "scan.archive.limit",
			fmt.Sprintf("entry %q decompresses past the limit of %d bytes per file: it and the rest of the file were not scanned", name, fsn.lim.MaxDecompressed))
	}
	return true
}

// errBomb stops a decompression whose ratio marks a bomb.
var errBomb = errors.New("decompression bomb")

// countingReader counts decompressed bytes against the file's budget and
// stops at a ratio no honest archive reaches.
type countingReader struct {
	r   io.Reader
	fsn *fileScan
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.fsn.stopped {
		return 0, errBomb
	}
	n, err := c.r.Read(p)
	c.fsn.decompressed += int64(n)
	if f := c.fsn; f.decompressed > 16<<20 && f.decompressed/max(f.topSize, 1) > f.lim.MaxRatio {
		f.stopped = true
		f.rep.Findings = append(f.rep.Findings, newFinding(f.path, "", "archive", -1, -1, SeverityHigh, "scan.archive.bomb",
			fmt.Sprintf("decompression bomb: %d bytes on disk expand past %d bytes (ratio over %d:1, beyond any single compression layer); scanning of the file stopped", f.topSize, f.decompressed, f.lim.MaxRatio),
			atlasMalformed))
		return n, errBomb
	}
	return n, err
}

func (fsn *fileScan) scanTar(src source) {
	if !fsn.enterArchive(src, "tar") {
		return
	}
	sr := io.NewSectionReader(src.r, 0, src.size)
	tr := tar.NewReader(sr)
	for first := true; ; first = false {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			if first {
				fsn.unparseable(src, "tar", -1, err.Error())
			} else {
				fsn.add(src, "tar", -1, SeverityMedium, "scan.unparseable", "tar archive broken after its first entries, which were scanned: "+err.Error())
			}
			return
		}
		if !fsn.countEntry(src, "tar") {
			return
		}
		fsn.checkEntryName(src, "tar", hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			target := hdr.Linkname
			if strings.HasPrefix(target, "/") || strings.HasPrefix(path.Clean(path.Join(path.Dir(hdr.Name), target)), "../") {
				fsn.add(src, "tar", -1, SeverityMedium, "scan.archive.symlink",
					fmt.Sprintf("entry %q links to %q, outside the archive: extracting it lets later entries write through it", hdr.Name, target))
			}
			continue
		case tar.TypeReg, tar.TypeGNUSparse:
		default:
			continue
		}
		// After Next, the section's position is where the entry's data
		// starts (archive/tar reads headers block by block and seeks over
		// data); unless the entry is sparse, its data lie there verbatim.
		pos, _ := sr.Seek(0, io.SeekCurrent)
		sparse := hdr.Typeflag == tar.TypeGNUSparse || hdr.PAXRecords["GNU.sparse.map"] != "" || hdr.PAXRecords["GNU.sparse.major"] != ""
		if !sparse && hdr.Size >= 0 && hdr.Size <= src.size-pos {
			fsn.scanSource(src.child(hdr.Name, io.NewSectionReader(src.r, pos, hdr.Size), hdr.Size, pos))
			continue
		}
		if fsn.stopped {
			return
		}
		ra, n, cleanup, ok := fsn.spool(src, "tar", hdr.Name, tr)
		if !ok {
			if fsn.stopped {
				return
			}
			continue
		}
		fsn.scanSource(src.child(hdr.Name, ra, n, -1))
		cleanup()
	}
}

// scanCompressed opens a gzip, bzip2 or zlib stream and scans what it
// holds. A weak guess (a zlib header on a file not named like one) that
// does not decompress is not that format: it returns false.
func (fsn *fileScan) scanCompressed(src source, format string, strong bool) bool {
	if !fsn.enterArchive(src, format) {
		return true
	}
	sr := io.NewSectionReader(src.r, 0, src.size)
	var r io.Reader
	inner := strings.TrimSuffix(src.name, path.Ext(src.name))
	switch format {
	case "gzip":
		zr, err := gzip.NewReader(sr)
		if err != nil {
			fsn.unparseable(src, format, -1, err.Error())
			return true
		}
		defer zr.Close()
		if zr.Name != "" {
			inner = pathBase(zr.Name)
		}
		if strings.HasSuffix(strings.ToLower(src.name), ".tgz") {
			inner += ".tar"
		}
		r = zr
	case "zlib":
		zr, err := zlib.NewReader(sr)
		if err != nil {
			if strong {
				fsn.unparseable(src, format, -1, err.Error())
			}
			return strong
		}
		defer zr.Close()
		// joblib compresses the pickle itself: name it so.
		inner = src.name + ".pkl"
		if !strong {
			// Check that it really decompresses before calling it zlib.
			probe, err := zlib.NewReader(io.NewSectionReader(src.r, 0, src.size))
			if err != nil {
				return false
			}
			var b [1]byte
			_, err = io.ReadFull(probe, b[:])
			probe.Close()
			if err != nil {
				return false
			}
		}
		r = zr
	default:
		r = bzip2.NewReader(sr)
	}
	if inner == "" || inner == src.name {
		inner = "data"
	}
	if fsn.stopped {
		return true
	}
	ra, n, cleanup, ok := fsn.spool(src, format, inner, r)
	if !ok {
		return true
	}
	defer cleanup()
	fsn.scanSource(src.child(inner, ra, n, -1))
	return true
}

// zipEntryCount reads the number of entries from the end of central
// directory record (or its zip64 version).
func zipEntryCount(r io.ReaderAt, size int64) (uint64, bool) {
	const eocdLen, maxComment = 22, 65535
	n := min(size, eocdLen+maxComment)
	if n < eocdLen {
		return 0, false
	}
	tail := make([]byte, n)
	if k, _ := r.ReadAt(tail, size-n); int64(k) < n {
		return 0, false
	}
	i := bytes.LastIndex(tail, []byte("PK\x05\x06"))
	if i < 0 || len(tail)-i < eocdLen {
		return 0, false
	}
	count := uint64(binary.LittleEndian.Uint16(tail[i+10:]))
	if count != 0xffff {
		return count, true
	}
	// zip64: the locator just before the record points at the zip64 record.
	loc := size - n + int64(i) - 20
	var l [20]byte
	if loc < 0 {
		return count, true
	}
	if k, _ := r.ReadAt(l[:], loc); k < 20 || string(l[:4]) != "PK\x06\x07" {
		return count, true
	}
	off := int64(binary.LittleEndian.Uint64(l[8:]))
	var rec [56]byte
	if off < 0 || off > size-56 {
		return count, true
	}
	if k, _ := r.ReadAt(rec[:], off); k < 56 || string(rec[:4]) != "PK\x06\x06" {
		return count, true
	}
	return binary.LittleEndian.Uint64(rec[32:]), true
}
