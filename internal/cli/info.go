package cli

import (
	"fmt"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/data"
	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/internal/version"
	"github.com/bulwark-sec/bulwark/nn"
)

func newVersionCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the version and the compute engine in use",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			info := map[string]any{
				"version": version.Version,
				"engine":  engine.Describe(),
				"go":      runtime.Version(),
				"os_arch": runtime.GOOS + "/" + runtime.GOARCH,
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), info)
			}
			fmt.Fprintf(c.OutOrStdout(), "bulwark %s\nengine:  %s\ngo:      %s %s/%s\n", version.Version, engine.Describe(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}

func newModelsCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "models",
		Short: "List the architectures bulwark can train",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			type row struct {
				Name        string `json:"name"`
				Description string `json:"description"`
				Input       string `json:"input"`
				Params      int    `json:"params_fashion_mnist"`
			}
			var rows []row
			for _, a := range nn.Archs() {
				g, err := nn.Build(a.Name, []int{1, 28, 28}, 10, 1)
				if err != nil {
					return err
				}
				in := "any (flattened)"
				if a.Images {
					in = "images [C,H,W]"
				}
				rows = append(rows, row{a.Name, a.Description, in, g.NumParams()})
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), map[string]any{"architectures": rows})
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tINPUT\tPARAMS (28x28, 10 classes)\tDESCRIPTION")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.Name, r.Input, r.Params, r.Description)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}

func newDataCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "data", Short: "Inspect datasets"}
	var asJSON bool
	info := &cobra.Command{
		Use:   "info DATASET",
		Short: "Describe a dataset: format, shape, classes, splits and fingerprints",
		Example: `  bulwark data info fashion-mnist
  bulwark data info ./my-images/ --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			in, err := data.Info(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), in)
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "dataset: %s\nsource:  %s\nformat:  %s\nshape:   %v (%s)\nclasses: %d (%s)\n", in.Name, in.Source, in.Format, in.Shape, in.Layout, len(in.Classes), strings.Join(in.Classes, ", "))
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SPLIT\tEXAMPLES\tFINGERPRINT")
			for _, s := range in.Splits {
				name := s.Name
				if name == "" {
					name = "(all)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\n", name, s.Examples, s.Fingerprint)
			}
			return tw.Flush()
		},
	}
	info.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	c.AddCommand(info)
	return c
}
