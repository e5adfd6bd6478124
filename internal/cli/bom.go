package cli

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/bom"
	"github.com/bulwark-sec/bulwark/internal/atomicfile"
)

func newBOMCmd() *cobra.Command {
	var format, out string
	c := &cobra.Command{
		Use:   "bom PATH",
		Short: "Write an AI bill of materials (CycloneDX 1.6 ML-BOM) for a model file or folder",
		Long: `Write a CycloneDX 1.6 ML-BOM: every file with its SHA-256, each model
(bulwark .safetensors, ONNX) as a machine-learning-model component with a
model card from its metadata, and the datasets a bulwark model was trained on,
identified by their content fingerprints.`,
		Example: `  bulwark bom ./model-dir --format cyclonedx > model.cdx.json
  bulwark bom fm-cnn.safetensors --out fm-cnn.cdx.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if format != "cyclonedx" {
				return &ExitError{Code: ExitInput, Err: fmt.Errorf("--format %q: only cyclonedx is supported", format)}
			}
			b, err := bom.Build(args[0], time.Now())
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := bom.Write(&buf, b); err != nil {
				return err
			}
			if out == "" {
				_, err := io.Copy(c.OutOrStdout(), &buf)
				return err
			}
			return atomicfile.WriteBytes(out, buf.Bytes(), 0o644)
		},
	}
	c.Flags().StringVar(&format, "format", "cyclonedx", "output format: cyclonedx (JSON)")
	c.Flags().StringVar(&out, "out", "", "write to this file instead of stdout")
	return c
}
