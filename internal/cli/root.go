// Package cli wires bulwark's commands (cobra). Commands parse flags, call
// the library and print; the work itself lives in the domain packages.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes, documented in docs/cli.md.
const (
	ExitOK     = 0
	ExitPolicy = 1 // a policy gate failed or findings were reported
	ExitInput  = 2 // usage error or bad input
)

// ExitError carries an exit code out of a command.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode maps an error from Execute to the process exit code: usage and
// input errors (the common case) are 2 unless a command says otherwise.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitInput
}

// globals are the flags every command shares.
type globals struct {
	quiet  bool
	engine string
}

// NewRoot builds the command tree.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "bulwark",
		Short: "Security toolkit for machine-learning models: attack, harden, audit, ship and guard them",
		Long: `bulwark trains, evaluates and (in later releases) attacks, hardens, audits,
scans and serves machine-learning classifiers, from one binary.

Models are bulwark's own .safetensors files or ONNX exports from PyTorch and
other frameworks. Datasets are named (fashion-mnist) or paths: an IDX folder,
an .npz, a .csv, or a folder of images with one sub-folder per class.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "no progress output")
	root.PersistentFlags().StringVar(&g.engine, "engine", "auto", "compute engine: auto, gomlx or blas")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &ExitError{Code: ExitInput, Err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(
		newVersionCmd(),
		newModelsCmd(),
		newDataCmd(g),
		newTrainCmd(g),
		newEvalCmd(g),
		newPredictCmd(g),
		newScanCmd(),
		newBOMCmd(),
		newSignCmd(),
		newVerifyCmd(),
		newAttackCmd(g),
		newAssessCmd(g),
		newCertifyCmd(g),
		newDetectCmd(g),
		newPrivacyCmd(g),
		newLLMCmd(),
	)
	return root
}

// Execute runs the command line and returns the exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	commandLine = shellJoin(append([]string{"bulwark"}, args...))
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "bulwark: %v\n", err)
	}
	return ExitCode(err)
}

// printJSON writes v as one JSON object on a line.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
