package sign

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// DefaultIgnorePaths are excluded from every model folder (OMS §6.2),
// matched as top-level path components.
var DefaultIgnorePaths = []string{".git", ".gitignore", ".gitattributes", ".github"}

func newSHA256() hash.Hash { return sha256.New() }

// checkIgnorePath enforces OMS §6.2.1: ignore entries are relative,
// "/"-separated paths without globs or parent traversal.
func checkIgnorePath(p string) error {
	switch {
	case p == "":
		return errors.New("ignore path is empty")
	case strings.ContainsAny(p, "*?["):
		return fmt.Errorf("ignore path %q contains a glob character", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("ignore path %q is absolute", p)
	case p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/.."):
		return fmt.Errorf("ignore path %q has a parent (..) component", p)
	}
	return nil
}

// ignored reports whether the canonical relative path rel is one of the
// ignore entries or lies under one (an entry excludes its whole subtree).
func ignored(rel string, ignore []string) bool {
	for _, ig := range ignore {
		ig = path.Clean(ig)
		if rel == ig || strings.HasPrefix(rel, ig+"/") {
			return true
		}
	}
	return false
}

// fileDigest is the hex SHA-256 of a file's contents.
func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// buildManifest enumerates and hashes the model at root with the "files"
// serialization, SHA-256 and no symlink following (OMS §6.1–6.4). ignore
// lists the relative paths to exclude (the defaults are added by callers).
// The result is sorted by name, byte-wise, which for valid UTF-8 is the
// Unicode code point order the spec asks for.
func buildManifest(root string, ignore []string) ([]Resource, error) {
	// The model path itself may be a link the user chose to name; resolve
	// it so the walk below sees the real folder (links inside are refused).
	if li, err := os.Lstat(root); err == nil && li.Mode()&fs.ModeSymlink != 0 {
		r, err := filepath.EvalSymlinks(root)
		if err != nil {
			return nil, err
		}
		root = r
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	// A single-file model is one resource named by its basename.
	if fi.Mode().IsRegular() {
		name := filepath.Base(root)
		if !utf8.ValidString(name) {
			return nil, fmt.Errorf("file name %q is not valid UTF-8", name)
		}
		d, err := fileDigest(root)
		if err != nil {
			return nil, err
		}
		return []Resource{{Name: name, Digest: d, Algorithm: "sha256"}}, nil
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is neither a regular file nor a folder", root)
	}
	var res []Resource
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		r, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(r)
		if ignored(rel, ignore) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !utf8.ValidString(rel) {
			return fmt.Errorf("path %q is not valid UTF-8", rel)
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			// We always sign with allow_symlinks=false: a link could point
			// outside the model, so refuse rather than silently skip it.
			return fmt.Errorf("symbolic link %s: symlinks are not allowed in a signed model", rel)
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return nil // sockets, devices, pipes: not model content
		}
		dg, err := fileDigest(p)
		if err != nil {
			return err
		}
		res = append(res, Resource{Name: rel, Digest: dg, Algorithm: "sha256"})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(res, func(i, j int) bool { return res[i].Name < res[j].Name })
	return res, nil
}

// ManifestError names what differs between the signed manifest and the
// model on disk.
type ManifestError struct {
	Modified []string
	Added    []string
	Removed  []string
}

func (e *ManifestError) Error() string {
	var parts []string
	if len(e.Modified) > 0 {
		parts = append(parts, "modified: "+strings.Join(e.Modified, ", "))
	}
	if len(e.Added) > 0 {
		parts = append(parts, "added (not in signature): "+strings.Join(e.Added, ", "))
	}
	if len(e.Removed) > 0 {
		parts = append(parts, "removed: "+strings.Join(e.Removed, ", "))
	}
	return "model does not match the signed manifest: " + strings.Join(parts, "; ")
}

// compareManifests returns a *ManifestError listing every difference, or nil.
func compareManifests(signed, local []Resource) error {
	want := make(map[string]string, len(signed))
	for _, r := range signed {
		want[r.Name] = r.Digest
	}
	var e ManifestError
	seen := make(map[string]bool, len(local))
	for _, r := range local {
		seen[r.Name] = true
		d, ok := want[r.Name]
		switch {
		case !ok:
			e.Added = append(e.Added, r.Name)
		case d != r.Digest:
			e.Modified = append(e.Modified, r.Name)
		}
	}
	for _, r := range signed {
		if !seen[r.Name] {
			e.Removed = append(e.Removed, r.Name)
		}
	}
	if len(e.Modified)+len(e.Added)+len(e.Removed) == 0 {
		return nil
	}
	return &e
}
