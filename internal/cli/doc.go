package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Markdown writes the CLI reference (docs/cli.md) from the command tree, so
// the document cannot drift from the flags; a test keeps the file current.
func Markdown(w io.Writer) {
	root := NewRoot(io.Discard, io.Discard)
	fmt.Fprintf(w, "# bulwark command reference\n\nGenerated from the commands by `go test ./internal/cli -run TestCLIReference -update`; do not edit by hand.\n\n")
	fmt.Fprintf(w, "Exit codes: %d success, %d a policy gate failed or findings were reported, %d a usage or input error.\n\n", ExitOK, ExitPolicy, ExitInput)
	fmt.Fprintf(w, "Global flags:\n\n```\n%s```\n\n", root.PersistentFlags().FlagUsages())
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			if sub.Runnable() {
				fmt.Fprintf(w, "## %s\n\n%s\n\n", sub.CommandPath(), sub.Short)
				if sub.Long != "" {
					fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(sub.Long))
				}
				fmt.Fprintf(w, "```\n%s\n```\n\n", sub.UseLine())
				if sub.Example != "" {
					fmt.Fprintf(w, "Examples:\n\n```\n%s\n```\n\n", sub.Example)
				}
				if f := sub.LocalFlags().FlagUsages(); f != "" {
					fmt.Fprintf(w, "Flags:\n\n```\n%s```\n\n", f)
				}
			}
			walk(sub)
		}
	}
	walk(root)
}
