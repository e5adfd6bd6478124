package data

import (
	"crypto/sha256"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// An image folder holds one sub-folder per class, named for the class, with
// PNG and JPEG files (at any depth) inside, as torchvision's ImageFolder
// expects. Optional train/ and test/ sub-folders, each laid out that way,
// hold the splits.

// imageExts are the file extensions taken as images; other files (notes,
// .DS_Store, ...) are ignored.
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true}

// imageFile is one image of a folder: its path relative to the split
// folder, with '/' separators, and its class.
type imageFile struct {
	rel   string
	class int
}

func isDir(path string) bool {
	st, err := os.Stat(path) // follows symlinks, so linked class folders count
	return err == nil && st.IsDir()
}

// imageFolderSplits lists the split folders present, or [""] when the
// folder is a single split.
func imageFolderSplits(root string) []string {
	var splits []string
	for _, s := range []string{"train", "test"} {
		if isDir(filepath.Join(root, s)) {
			splits = append(splits, s)
		}
	}
	if splits == nil {
		return []string{""}
	}
	return splits
}

// classFolders lists the non-hidden sub-folders of dir, sorted.
func classFolders(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") && isDir(filepath.Join(dir, e.Name())) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// loadImageFolder loads split from a folder of class folders. With train/
// and test/ present, "" means "train", and the classes are the union of
// both splits' class folders, so a label means the same class in both.
func loadImageFolder(name, root, split string) (*Dataset, error) {
	splits := imageFolderSplits(root)
	dir := root
	var classes []string
	if splits[0] == "" {
		if split != "" {
			return nil, fmt.Errorf("%s: has no train/ or test/ sub-folder, so it is a single split, not %q: %w", root, split, ErrSingleSplit)
		}
		var err error
		if classes, err = classFolders(root); err != nil {
			return nil, err
		}
	} else {
		if split == "" {
			split = "train"
		}
		dir = filepath.Join(root, split)
		if !isDir(dir) {
			return nil, fmt.Errorf("%s: no %s split: folder %s not found", root, split, dir)
		}
		for _, s := range splits {
			c, err := classFolders(filepath.Join(root, s))
			if err != nil {
				return nil, err
			}
			classes = append(classes, c...)
		}
		slices.Sort(classes)
		classes = slices.Compact(classes)
	}
	if len(classes) == 0 {
		return nil, fmt.Errorf("%s: no class folders: want one sub-folder per class holding PNG or JPEG files", dir)
	}

	files, err := listImages(dir, classes)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no PNG or JPEG files in the class folders (%s)", dir, strings.Join(classes, ", "))
	}

	// First pass: headers only, to learn the size and channels and to
	// check every image agrees before decoding anything.
	var w, h int
	gray, deep := true, true
	for i, f := range files {
		path := filepath.Join(dir, filepath.FromSlash(f.rel))
		cfg, err := imageConfigFile(path)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			w, h = cfg.Width, cfg.Height
		} else if cfg.Width != w || cfg.Height != h {
			first := filepath.Join(dir, filepath.FromSlash(files[0].rel))
			return nil, fmt.Errorf("%s: image is %dx%d but %s is %dx%d: all images must have the same size", path, cfg.Width, cfg.Height, first, w, h)
		}
		g, d := colorInfo(cfg.ColorModel)
		gray, deep = gray && g, deep && d
	}
	c := 3
	if gray {
		c = 1
	}
	per := c * h * w
	if _, ok := product([]int{len(files), c, h, w}, MaxValues); !ok {
		return nil, fmt.Errorf("%s: %d images of %dx%dx%d, more than the limit of %d values", dir, len(files), c, h, w, MaxValues)
	}

	// Second pass: decode, convert and hash. X grows as images actually
	// decode, so headers that lie cannot make us allocate it up front.
	// The fingerprint covers each file's relative path as well as its
	// bytes: here the path is the label.
	hash := sha256.New()
	var x []float32
	y := make([]int, 0, len(files))
	for _, f := range files {
		path := filepath.Join(dir, filepath.FromSlash(f.rel))
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		hash.Write([]byte(f.rel))
		hash.Write([]byte{0})
		hash.Write(b)
		img, err := decodeImage(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if img.Bounds().Dx() != w || img.Bounds().Dy() != h {
			return nil, fmt.Errorf("%s: image changed while loading (now %dx%d, was %dx%d)", path, img.Bounds().Dx(), img.Bounds().Dy(), w, h)
		}
		if g, _ := colorInfo(img.ColorModel()); gray && !g {
			return nil, fmt.Errorf("%s: image changed while loading (now colour, was grayscale)", path)
		}
		x = slices.Grow(x, per)[:len(x)+per]
		writeCHW(x[len(x)-per:], img, c, deep)
		y = append(y, f.class)
	}

	scale := float32(1.0 / 255)
	if deep {
		scale = 1.0 / 65535
	}
	return &Dataset{
		Name:        name,
		Source:      dir,
		Split:       split,
		X:           slices.Clip(x),
		Shape:       []int{c, h, w},
		Y:           y,
		Classes:     classes,
		Fingerprint: fingerprint(hash, split),
		Preprocess:  Preprocess{Scale: scale, Layout: LayoutNCHW},
	}, nil
}

// listImages finds the image files under each class folder of dir, sorted
// by path compared component by component, so examples come class by
// class, and within a class in name order.
func listImages(dir string, classes []string) ([]imageFile, error) {
	var files []imageFile
	for ci, class := range classes {
		classDir := filepath.Join(dir, class)
		if !isDir(classDir) {
			continue // a class only the other split has
		}
		// WalkDir does not follow a symlinked root; resolve it first.
		walkRoot, err := filepath.EvalSymlinks(classDir)
		if err != nil {
			return nil, err
		}
		err = filepath.WalkDir(walkRoot, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") && path != walkRoot {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() || !imageExts[strings.ToLower(filepath.Ext(path))] {
				return nil
			}
			rel, err := filepath.Rel(walkRoot, path)
			if err != nil {
				return err
			}
			files = append(files, imageFile{rel: class + "/" + filepath.ToSlash(rel), class: ci})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	key := func(f imageFile) string { return strings.ReplaceAll(f.rel, "/", "\x00") }
	slices.SortFunc(files, func(a, b imageFile) int { return strings.Compare(key(a), key(b)) })
	return files, nil
}

func imageConfigFile(path string) (image.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return image.Config{}, err
	}
	defer f.Close()
	cfg, err := imageConfig(f)
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}
