package data

import (
	"fmt"
	"os"
	"path/filepath"
)

// DataEnv names the environment variable that, when set, is the folder
// holding named datasets (one sub-folder per name) instead of
// DefaultDataDir.
const DataEnv = "BULWARK_DATA"

// DefaultDataDir is where Debian's dataset packages install their files
// (dataset-fashion-mnist installs /usr/share/datasets/fashion-mnist).
const DefaultDataDir = "/usr/share/datasets"

// namedDataset is a dataset known by name: a folder of IDX files under the
// data folder, with fixed class names.
type namedDataset struct {
	classes []string
	debian  string // Debian package that installs it, if any
	files   string // what the folder must hold, for the error message
}

var namedDatasets = map[string]namedDataset{
	"fashion-mnist": {
		classes: []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"},
		debian:  "dataset-fashion-mnist",
		files:   "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz",
	},
	"mnist": {
		classes: numberedClasses(10),
		files:   "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz",
	},
}

// NamedDatasets lists the names Load accepts besides paths.
func NamedDatasets() []string { return []string{"fashion-mnist", "mnist"} }

// namedFolder finds the folder of a named dataset, or says where it looked
// and how to get the files there.
func namedFolder(name string) (string, error) {
	nd := namedDatasets[name]
	root := DefaultDataDir
	env := os.Getenv(DataEnv)
	if env != "" {
		root = env
	}
	dir := filepath.Join(root, name)
	st, err := os.Stat(dir)
	if err == nil && st.IsDir() {
		return dir, nil
	}
	var fix string
	switch {
	case env != "":
		fix = fmt.Sprintf("%s=%s is set, so only that folder is searched: put the IDX files (%s) in %s, or unset %s to use %s",
			DataEnv, env, nd.files, dir, DataEnv, filepath.Join(DefaultDataDir, name))
		if nd.debian != "" {
			fix += " (installed by the Debian package " + nd.debian + ")"
		}
	case nd.debian != "":
		fix = fmt.Sprintf("install the Debian package %s (apt-get install %s), or set %s to a folder holding %s/ with the IDX files (%s)",
			nd.debian, nd.debian, DataEnv, name, nd.files)
	default:
		fix = fmt.Sprintf("put the IDX files (%s) there, or set %s to a folder holding %s/ with them",
			nd.files, DataEnv, name)
	}
	return "", fmt.Errorf("%s: dataset folder %s not found: %s", name, dir, fix)
}
