package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/atomicfile"
	"github.com/bulwark-sec/bulwark/scan"
)

// scanOptions are the flags of bulwark scan.
type scanOptions struct {
	format         string
	out            string
	failOn         string
	followSymlinks bool
	allow          []string
}

// AddFlags registers the flags on c.
func (o *scanOptions) AddFlags(c *cobra.Command) {
	c.Flags().StringVar(&o.format, "format", scan.FormatTable, "report format: table, json or sarif")
	c.Flags().StringVar(&o.out, "out", "", "write the report to this file (atomically) instead of standard output")
	c.Flags().StringVar(&o.failOn, "fail-on", "MEDIUM", "exit 1 when a finding is at or above this severity: INFO, LOW, MEDIUM, HIGH or CRITICAL")
	c.Flags().BoolVar(&o.followSymlinks, "follow-symlinks", false, "follow symbolic links that leave the scanned folder")
	c.Flags().StringSliceVar(&o.allow, "allow", nil, "treat these pickle globals as safe (module.name or module.*; repeatable)")
}

func newScanCmd() *cobra.Command {
	o := &scanOptions{}
	c := &cobra.Command{
		Use:   "scan PATH...",
		Short: "Scan model files for malicious and malformed content without loading them",
		Long: `scan checks model files and folders for content that runs code or touches
files on load, and for files that break their format. Folders are walked
recursively and archives (zip, tar, gzip, bzip2) are opened.

Pickles (.pkl, .pt/.pth, .bin, .joblib, .dill, NumPy object arrays) are
followed opcode by opcode by a pickle virtual machine that executes nothing
and judges every import and call against an allowlist. Keras (.keras, .h5),
TensorFlow SavedModel, ONNX, safetensors and GGUF files are checked for the
constructs of each format that run code or read files, and for structural
violations. A file that cannot be parsed is reported, never passed as clean.

Exit codes: 0 nothing at or above --fail-on, 1 findings at or above it,
2 usage or input error (such as a path that does not exist).`,
		Example: `  bulwark scan ./models/
  bulwark scan model.pt --format json > scan.json
  bulwark scan hf-snapshot/ --format sarif --out scan.sarif --fail-on HIGH`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return o.run(c, args)
		},
	}
	o.AddFlags(c)
	return c
}

func (o *scanOptions) run(c *cobra.Command, paths []string) error {
	failOn, err := scan.ParseSeverity(o.failOn)
	if err != nil || failOn == scan.SeveritySafe {
		return &ExitError{Code: ExitInput, Err: fmt.Errorf("--fail-on %q: want INFO, LOW, MEDIUM, HIGH or CRITICAL", o.failOn)}
	}
	format := strings.ToLower(o.format)
	switch format {
	case scan.FormatTable, scan.FormatJSON, scan.FormatSARIF:
	default:
		return &ExitError{Code: ExitInput, Err: fmt.Errorf("--format %q: want table, json or sarif", o.format)}
	}
	s := scan.New(scan.Options{FollowSymlinks: o.followSymlinks, Allow: o.allow})
	rep, err := s.Scan(c.Context(), paths...)
	if err != nil {
		var ie *scan.InputError
		if errors.As(err, &ie) {
			return &ExitError{Code: ExitInput, Err: err}
		}
		return err
	}
	write := func(w io.Writer) error { return scan.Write(w, rep, format) }
	if o.out != "" {
		if err := atomicfile.Write(o.out, 0o644, write); err != nil {
			return &ExitError{Code: ExitInput, Err: err}
		}
	} else if err := write(c.OutOrStdout()); err != nil {
		return err
	}
	if n := rep.CountAtLeast(failOn); n > 0 {
		return &ExitError{Code: ExitPolicy, Err: fmt.Errorf("%d finding(s) at or above %s (highest %s)", n, failOn, rep.Max())}
	}
	return nil
}
