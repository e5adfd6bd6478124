package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Options configures a Scanner.
type Options struct {
	// FollowSymlinks follows symbolic links that leave the scanned folder.
	// Without it they are reported (scan.symlink.outside) and not read:
	// a link planted in a model folder should not make the scanner read,
	// and report on, files elsewhere on the machine.
	FollowSymlinks bool
	// Allow lists extra pickle globals to treat as safe: "module.name", or
	// "module.*" for a module and everything under it.
	Allow []string
	// Limits bound the work per file; zero fields take DefaultLimits.
	Limits Limits
}

// Scanner scans files and folders. It holds no state between scans and may
// be used from several goroutines.
type Scanner struct {
	opts Options
	lim  Limits
	pol  *policy
}

// New returns a Scanner.
func New(opts Options) *Scanner {
	return &Scanner{opts: opts, lim: opts.Limits.withDefaults(), pol: newPolicy(opts.Allow)}
}

// InputError is a path given to Scan that does not exist or cannot be
// examined at all: a usage error rather than a finding.
type InputError struct {
	Path string
	Err  error
}

func (e *InputError) Error() string { return fmt.Sprintf("scanning %s: %v", e.Path, e.Err) }
func (e *InputError) Unwrap() error { return e.Err }

// Scan scans every path (files, or folders walked recursively) and returns
// the report. It fails only when a path does not exist; files that cannot
// be read or parsed are findings in the report.
func (s *Scanner) Scan(ctx context.Context, paths ...string) (*Report, error) {
	if len(paths) == 0 {
		return nil, &InputError{Path: "", Err: errors.New("no path to scan")}
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return nil, &InputError{Path: p, Err: err}
		}
	}
	rep := &Report{Inputs: append([]string(nil), paths...)}
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info, err := os.Stat(p)
		if err != nil {
			s.unreadable(rep, p, err)
			continue
		}
		if info.IsDir() {
			s.walk(ctx, rep, p, map[string]bool{})
		} else {
			s.scanFile(ctx, rep, p)
		}
	}
	rep.finish()
	return rep, nil
}

// ScanReader scans one file held by r (name is used for the report and for
// format detection by extension). It is the entry point for data that is
// not on disk, and for fuzzing.
func (s *Scanner) ScanReader(ctx context.Context, name string, r io.ReaderAt, size int64) *Report {
	rep := &Report{Inputs: []string{name}}
	s.scanOpen(ctx, rep, name, r, size, "")
	rep.finish()
	return rep
}

// ScanBytes scans one file held in memory.
func (s *Scanner) ScanBytes(ctx context.Context, name string, b []byte) *Report {
	return s.ScanReader(ctx, name, bytes.NewReader(b), int64(len(b)))
}

// unreadable reports a file or folder that could not be read. It is a
// finding as well as an error, so that it can never pass as clean.
func (s *Scanner) unreadable(rep *Report, path string, err error) {
	rep.Errors = append(rep.Errors, ScanError{Path: path, Message: err.Error()})
	rep.Findings = append(rep.Findings, newFinding(path, "", "", -1, -1, SeverityMedium, "scan.io.unreadable",
		"could not be read, so it was not scanned: "+err.Error(), atlasMalformed))
}

// walk scans a folder recursively. visited holds the real paths of folders
// entered through followed symlinks, to stop at loops.
func (s *Scanner) walk(ctx context.Context, rep *Report, root string, visited map[string]bool) {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		s.unreadable(rep, root, err)
		return
	}
	if realRoot, err = filepath.Abs(realRoot); err != nil {
		s.unreadable(rep, root, err)
		return
	}
	if visited[realRoot] {
		return
	}
	visited[realRoot] = true
	// The real folder is walked (WalkDir does not enter a root that is a
	// link) and paths are reported under the name the user gave.
	_ = filepath.WalkDir(realRoot, func(real string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		path := root
		if rel, rerr := filepath.Rel(realRoot, real); rerr == nil && rel != "." {
			path = filepath.Join(root, rel)
		}
		if err != nil {
			s.unreadable(rep, path, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		switch t := d.Type(); {
		case d.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			s.symlink(ctx, rep, path, realRoot, visited)
		case t.IsRegular():
			s.scanFile(ctx, rep, path)
		default:
			rep.Skipped = append(rep.Skipped, SkippedFile{Path: path, Reason: "not a regular file (device, pipe or socket)"})
		}
		return nil
	})
}

// symlink handles a link met while walking the folder realRoot.
func (s *Scanner) symlink(ctx context.Context, rep *Report, path, realRoot string, visited map[string]bool) {
	target, err := filepath.EvalSymlinks(path)
	if err == nil {
		target, err = filepath.Abs(target)
	}
	if err != nil {
		rep.Skipped = append(rep.Skipped, SkippedFile{Path: path, Reason: "broken symbolic link: " + err.Error()})
		return
	}
	info, err := os.Stat(target)
	if err != nil {
		s.unreadable(rep, path, err)
		return
	}
	inside := target == realRoot || strings.HasPrefix(target, realRoot+string(filepath.Separator))
	if inside {
		// Its target is in the tree and is scanned under its own path.
		rep.Skipped = append(rep.Skipped, SkippedFile{Path: path, Reason: "symbolic link to " + target + ", inside the scanned folder: scanned there"})
		return
	}
	if !s.opts.FollowSymlinks {
		rep.Skipped = append(rep.Skipped, SkippedFile{Path: path, Reason: "symbolic link leaving the scanned folder, not followed"})
		rep.Findings = append(rep.Findings, newFinding(path, "", "", -1, -1, SeverityLow, "scan.symlink.outside",
			"symbolic link to "+target+", outside the scanned folder: not followed, so its content was not scanned (use --follow-symlinks)", atlasMalformed))
		return
	}
	if info.IsDir() {
		s.walk(ctx, rep, path, visited)
		return
	}
	if info.Mode().IsRegular() {
		s.scanFile(ctx, rep, path)
		return
	}
	rep.Skipped = append(rep.Skipped, SkippedFile{Path: path, Reason: "symbolic link to something other than a regular file"})
}

// scanFile scans one file on disk.
func (s *Scanner) scanFile(ctx context.Context, rep *Report, path string) {
	f, err := os.Open(path)
	if err != nil {
		s.unreadable(rep, path, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.unreadable(rep, path, err)
		return
	}
	if !st.Mode().IsRegular() {
		rep.Skipped = append(rep.Skipped, SkippedFile{Path: path, Reason: "not a regular file (device, pipe or socket)"})
		return
	}
	s.scanOpen(ctx, rep, path, f, st.Size(), path)
}

// scanOpen scans the content of one file.
func (s *Scanner) scanOpen(ctx context.Context, rep *Report, path string, r io.ReaderAt, size int64, diskPath string) {
	fsn := &fileScan{s: s, ctx: ctx, rep: rep, path: path, topSize: size, lim: s.lim}
	src := source{name: filepath.Base(path), r: r, size: size, base: 0, diskPath: diskPath}
	if fsn.scanSource(src) {
		rep.Scanned = append(rep.Scanned, path)
	} else {
		rep.Skipped = append(rep.Skipped, SkippedFile{Path: path, Reason: "not a recognised model, archive or pickle format"})
	}
}

// fileScan is the state of the scan of one file on disk, shared by the
// archives and payloads nested in it: the limits on decompression and
// entries are per file on disk.
type fileScan struct {
	s            *Scanner
	ctx          context.Context
	rep          *Report
	lim          Limits
	path         string
	topSize      int64
	decompressed int64
	entries      int
	// stopped is set once a decompression limit or bomb was reported: the
	// rest of the file is not decompressed.
	stopped bool
}

// source is one thing to scan: a file on disk, an archive entry or an
// embedded payload.
type source struct {
	// entry is the path inside archives and payloads, "" for the file.
	entry string
	// name is the base name used to recognise the format by extension.
	name string
	r    io.ReaderAt
	size int64
	// base is the offset of r's first byte in the file on disk, or -1 when
	// r's bytes are not stored verbatim there (decompressed data).
	base  int64
	depth int
	// diskPath is the file on disk when the source is that whole file;
	// ONNX external data is resolved against its folder.
	diskPath string
}

// child returns a source nested in src.
func (src source) child(name string, r io.ReaderAt, size, offset int64) source {
	entry := name
	if src.entry != "" {
		entry = src.entry + "!/" + name
	}
	base := int64(-1)
	if src.base >= 0 && offset >= 0 {
		base = src.base + offset
	}
	return source{entry: entry, name: pathBase(name), r: r, size: size, base: base, depth: src.depth + 1}
}

// pathBase is the last element of a slash- or backslash-separated path.
func pathBase(p string) string {
	p = strings.TrimRight(p, "/\\")
	if i := strings.LastIndexAny(p, "/\\"); i >= 0 {
		return p[i+1:]
	}
	return p
}

func newFinding(path, entry, format string, offset, fileOffset int64, sev Severity, rule, msg string, atlas []string) Finding {
	return Finding{
		Path: path, Entry: entry, Format: format, Offset: offset, FileOffset: fileOffset,
		Severity: sev, Fickling: sev.Fickling(), Rule: rule, Message: msg,
		ATLAS: append([]string(nil), atlas...), Count: 1,
	}
}

// add records a finding about src at offset (-1 for none).
func (fsn *fileScan) add(src source, format string, offset int64, sev Severity, rule, msg string) *Finding {
	fo := int64(-1)
	if offset >= 0 && src.base >= 0 {
		fo = src.base + offset
	}
	atlas := atlasMalformed
	if sev >= SeverityHigh || strings.HasPrefix(rule, "scan.pickle.global") || strings.HasPrefix(rule, "scan.pickle.call") {
		atlas = atlasCode
	}
	fsn.rep.Findings = append(fsn.rep.Findings, newFinding(fsn.path, src.entry, format, offset, fo, sev, rule, msg, atlas))
	return &fsn.rep.Findings[len(fsn.rep.Findings)-1]
}

// unparseable records that src could not be parsed as format: never clean.
// format may carry a note in parentheses ("pickle (truncated)") for the
// message; the finding's Format is the bare name.
func (fsn *fileScan) unparseable(src source, format string, offset int64, msg string) {
	name, _, _ := strings.Cut(format, " ")
	fsn.add(src, name, offset, SeverityMedium, "scan.unparseable", "cannot be parsed as "+format+", so it cannot be called clean: "+msg)
}

// scanSource recognises the format of src and scans it. It returns false
// when the format is not one the scanner knows.
func (fsn *fileScan) scanSource(src source) bool {
	if fsn.ctx.Err() != nil {
		return false
	}
	if src.entry != "" {
		fsn.rep.Summary.EntriesScanned++
	}
	head := make([]byte, 1024)
	n, err := src.r.ReadAt(head, 0)
	if n < len(head) && err != nil && err != io.EOF {
		fsn.ioError(src, err)
		return true
	}
	head = head[:n]
	d := detect(src.name, head, src.size, src.depth > 0)
	if d.alsoPickle && fsn.scanPickle(src, "pickle", 0, false) {
		fsn.add(src, "pickle", -1, SeverityMedium, "scan.format-mismatch", "named "+extOf(strings.ToLower(src.name))+" ("+d.format+") but the content is a pickle")
		return true
	}
	if d.mismatch != "" {
		fsn.add(src, d.format, -1, SeverityMedium, "scan.format-mismatch", d.mismatch)
	}
	switch d.format {
	case "zip":
		fsn.scanZip(src)
	case "tar":
		fsn.scanTar(src)
	case "gzip", "bzip2":
		fsn.scanCompressed(src, d.format, true)
	case "zlib":
		return fsn.scanCompressed(src, d.format, d.strong)
	case "xz", "zstd":
		fsn.add(src, d.format, -1, SeverityMedium, "scan.archive.unsupported", d.format+" compression is not supported, so the content was not scanned")
	case "pickle":
		return fsn.scanPickle(src, "pickle", 0, d.strong)
	case "numpy":
		fsn.scanNumpy(src)
	case "safetensors":
		fsn.scanSafetensors(src)
	case "gguf":
		fsn.scanGGUF(src)
	case "hdf5":
		fsn.scanHDF5(src)
	case "onnx":
		fsn.scanONNX(src)
	case "tf-savedmodel":
		fsn.scanTF(src, true)
	case "tf-graph":
		return fsn.scanTF(src, false)
	case "keras-metadata":
		fsn.scanKerasStrings(src, "keras")
	case "keras-json":
		return fsn.scanKerasJSON(src, false)
	default:
		return false
	}
	return true
}

// ioError reports a read failure inside a file.
func (fsn *fileScan) ioError(src source, err error) {
	loc := fsn.path
	if src.entry != "" {
		loc += "!/" + src.entry
	}
	fsn.rep.Errors = append(fsn.rep.Errors, ScanError{Path: loc, Message: err.Error()})
	fsn.add(src, "", -1, SeverityMedium, "scan.io.unreadable", "read error, so it was not scanned: "+err.Error())
}

// readAll reads a small source (bounded by the caller) into memory.
func readAll(src source, max int64) ([]byte, error) {
	if src.size > max {
		return nil, fmt.Errorf("%d bytes, larger than the limit of %d", src.size, max)
	}
	b := make([]byte, src.size)
	n, err := src.r.ReadAt(b, 0)
	if int64(n) == src.size {
		return b, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}
