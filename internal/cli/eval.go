package cli

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/data"
	"github.com/bulwark-sec/bulwark/evaluate"
	"github.com/bulwark-sec/bulwark/internal/progress"
	"github.com/bulwark-sec/bulwark/model"
)

func newEvalCmd(g *globals) *cobra.Command {
	var modelPath, dataName, split string
	var n int
	var asJSON bool
	c := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate a model: accuracy, loss, per-class precision/recall, confusion matrix, calibration",
		Example: `  bulwark eval --model fm-cnn.safetensors --data fashion-mnist --split test --json
  bulwark eval --model my-model.onnx --data fashion-mnist --n 1000`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if modelPath == "" || dataName == "" {
				return &ExitError{Code: ExitInput, Err: fmt.Errorf("--model and --data are required")}
			}
			m, d, err := loadModelAndData(g, modelPath, dataName, split, n)
			if err != nil {
				return err
			}
			bar := progress.New("evaluating", d.Len(), g.quiet || asJSON)
			start := time.Now()
			r, err := evaluate.Run(c.Context(), m.Net, d, m.Classes(), m.OutputIsProbabilities, func(done int) { bar.Set(done, "") })
			bar.Done()
			if err != nil {
				return err
			}
			secs := time.Since(start).Seconds()
			if asJSON {
				return printJSON(c.OutOrStdout(), map[string]any{
					"model": modelPath, "format": m.Format, "data": d.Name, "split": d.Split, "fingerprint": d.Fingerprint,
					"n": r.N, "accuracy": r.Accuracy, "loss": r.Loss, "ece": r.ECE, "per_class": r.PerClass,
					"confusion": r.Confusion, "seconds": secs, "examples_per_second": float64(r.N) / secs,
					"output_is_probabilities": m.OutputIsProbabilities,
				})
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "model %s (%s) on %s/%s, %d examples\n", modelPath, m.Format, d.Name, d.Split, r.N)
			fmt.Fprintf(w, "accuracy %.4f  loss %.4f  ECE %.4f  (%.1fs)\n\n", r.Accuracy, r.Loss, r.ECE, secs)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLASS\tSUPPORT\tPRECISION\tRECALL\tF1")
			for _, pc := range r.PerClass {
				fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t%.4f\n", pc.Class, pc.Support, pc.Precision, pc.Recall, pc.F1)
			}
			return tw.Flush()
		},
	}
	f := c.Flags()
	f.StringVar(&modelPath, "model", "", "model file (.safetensors or .onnx)")
	f.StringVar(&dataName, "data", "", "dataset name or path")
	f.StringVar(&split, "split", "", "split to evaluate (default: test, or the whole source if it has one split)")
	f.IntVar(&n, "n", 0, "evaluate only the first N examples (0: all)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}

// loadModelAndData loads both and checks they fit each other, so a mismatch
// is reported before any work.
func loadModelAndData(g *globals, modelPath, dataName, split string, n int) (*model.Model, *data.Dataset, error) {
	m, err := model.Load(modelPath, g.engine)
	if err != nil {
		return nil, nil, err
	}
	d, err := loadSplit(dataName, split, "test")
	if err != nil {
		return nil, nil, err
	}
	d = d.Head(n)
	if err := d.Validate(); err != nil {
		return nil, nil, err
	}
	if err := m.CheckInput(d.Shape); err != nil {
		return nil, nil, fmt.Errorf("%s and %s do not fit: %w", modelPath, d.Name, err)
	}
	k := m.Net.NumClasses()
	for i, y := range d.Y {
		if y >= k {
			return nil, nil, fmt.Errorf("%s has labels up to %d (example %d has %d), but %s has only %d classes", d.Name, maxInt(d.Y), i, y, modelPath, k)
		}
	}
	return m, d, nil
}

// loadSplit loads the split asked for; with none asked, the command's usual
// split (train or test), or the whole source when it has only one split.
func loadSplit(name, split, usual string) (*data.Dataset, error) {
	if split != "" {
		return data.Load(name, split)
	}
	d, err := data.Load(name, usual)
	if errors.Is(err, data.ErrSingleSplit) {
		return data.Load(name, "")
	}
	return d, err
}

func maxInt(v []int) int {
	m := math.MinInt
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func newPredictCmd(g *globals) *cobra.Command {
	var modelPath string
	var inputs []string
	var top int
	var asJSON bool
	c := &cobra.Command{
		Use:     "predict",
		Short:   "Classify images with a model",
		Example: `  bulwark predict --model fm-cnn.safetensors --input shirt.png --json`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if modelPath == "" || len(inputs) == 0 {
				return &ExitError{Code: ExitInput, Err: fmt.Errorf("--model and --input are required")}
			}
			m, err := model.Load(modelPath, g.engine)
			if err != nil {
				return err
			}
			classes := m.Classes()
			for _, in := range inputs {
				x, shape, err := data.LoadImage(in)
				if err != nil {
					return err
				}
				x, err = fitImage(x, shape, m.Net.Graph().InputShape)
				if err != nil {
					return fmt.Errorf("%s: %w", in, err)
				}
				out, err := m.Net.Logits(x, 1)
				if err != nil {
					return fmt.Errorf("%s: %w", in, err)
				}
				p := evaluate.Probabilities(out, m.OutputIsProbabilities)
				order := make([]int, len(p))
				for i := range order {
					order[i] = i
				}
				sort.SliceStable(order, func(a, b int) bool { return p[order[a]] > p[order[b]] })
				k := min(max(top, 1), len(order))
				type guess struct {
					Label       int     `json:"label"`
					Class       string  `json:"class"`
					Probability float64 `json:"probability"`
				}
				var guesses []guess
				for _, i := range order[:k] {
					guesses = append(guesses, guess{i, classes[i], p[i]})
				}
				if asJSON {
					if err := printJSON(c.OutOrStdout(), map[string]any{
						"model": modelPath, "input": in, "label": order[0], "class": classes[order[0]],
						"probability": p[order[0]], "top": guesses,
					}); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(c.OutOrStdout(), "%s: %s (%.1f%%)", in, classes[order[0]], 100*p[order[0]])
				for _, gs := range guesses[1:] {
					fmt.Fprintf(c.OutOrStdout(), ", %s %.1f%%", gs.Class, 100*gs.Probability)
				}
				fmt.Fprintln(c.OutOrStdout())
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&modelPath, "model", "", "model file (.safetensors or .onnx)")
	f.StringSliceVar(&inputs, "input", nil, "image file(s) (PNG or JPEG); repeat or separate with commas")
	f.IntVar(&top, "top", 3, "how many classes to show")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per input")
	return c
}

// fitImage adapts a decoded [C,H,W] image to the model's input: a colour
// image becomes grey (ITU-R BT.601 luma) for a one-channel model; any other
// mismatch is an error, never a silent resize.
func fitImage(x []float32, shape, want []int) ([]float32, error) {
	if len(want) == 3 && shape[0] == 3 && want[0] == 1 && shape[1] == want[1] && shape[2] == want[2] {
		hw := shape[1] * shape[2]
		g := make([]float32, hw)
		for i := range g {
			g[i] = 0.299*x[i] + 0.587*x[hw+i] + 0.114*x[2*hw+i]
		}
		return g, nil
	}
	n := 1
	for _, d := range want {
		n *= d
	}
	if len(x) != n || (len(want) == 3 && (shape[1] != want[1] || shape[2] != want[2])) {
		return nil, fmt.Errorf("image is %dx%d with %d channel(s), the model takes %v", shape[2], shape[1], shape[0], want)
	}
	return x, nil
}
