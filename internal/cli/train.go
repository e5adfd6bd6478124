package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/attack"
	"github.com/bulwark-sec/bulwark/defense/advtrain"
	"github.com/bulwark-sec/bulwark/defense/dpsgd"
	"github.com/bulwark-sec/bulwark/defense/smoothing"
	"github.com/bulwark-sec/bulwark/internal/progress"
	"github.com/bulwark-sec/bulwark/model"
	"github.com/bulwark-sec/bulwark/nn"
	"github.com/bulwark-sec/bulwark/privacy/accountant"
	"github.com/bulwark-sec/bulwark/train"
)

type trainOptions struct {
	data     string
	split    string
	n        int
	out      string
	resume   bool
	asJSON   bool
	cfg      train.Config
	optName  string
	momentum float32
	wd       float32
	defense  defenseFlags
	dp       dpFlags
}

// dpFlags choose differentially private training (defense/dpsgd).
type dpFlags struct {
	on            bool
	targetEps     float64
	delta         float64
	clip          float64
	noise         float64
	perLayer      bool
	sampling      string
	logicalBatch  int
	physicalBatch int
	secure        bool
	accountant    string
}

func (df *dpFlags) addFlags(c *cobra.Command) {
	f := c.Flags()
	f.BoolVar(&df.on, "dp", false, "train with DP-SGD: per-example clipping, Gaussian noise, a privacy accountant; ε is printed before training and recorded in the model")
	f.Float64Var(&df.targetEps, "target-epsilon", 0, "dp: calibrate the noise multiplier to spend this ε")
	f.Float64Var(&df.delta, "delta", 0, "dp: δ of the guarantee, below 1/N (default: the largest power of ten below 1/N, 1e-5 for Fashion-MNIST)")
	f.Float64Var(&df.clip, "clip", 1, "dp: per-example gradient norm bound C")
	f.Float64Var(&df.noise, "noise-multiplier", 0, "dp: noise standard deviation as a multiple of --clip (instead of --target-epsilon)")
	f.BoolVar(&df.perLayer, "per-layer-clip", false, "dp: clip each layer to C/√L instead of the whole gradient to C")
	f.StringVar(&df.sampling, "sampling", dpsgd.Poisson, "dp: batch sampling: poisson (what the accountant assumes) or shuffle (fixed-size batches; the recorded ε then does not formally hold)")
	f.IntVar(&df.logicalBatch, "logical-batch", 0, "dp: expected batch size per step (default: --batch)")
	f.IntVar(&df.physicalBatch, "physical-batch", 256, "dp: most examples per engine call; larger logical batches are accumulated")
	f.BoolVar(&df.secure, "secure-noise", false, "dp: draw noise and batches from a CSPRNG seeded by the OS (not reproducible)")
	f.StringVar(&df.accountant, "accountant", string(accountant.RDP), "dp: privacy accountant: rdp (Balle et al. 2020 conversion), rdp-classic (Mironov 2017) or pld (tighter)")
}

// dpOnly are the flags that mean nothing without --dp.
var dpOnly = []string{"target-epsilon", "delta", "clip", "noise-multiplier", "per-layer-clip", "sampling", "logical-batch", "physical-batch", "secure-noise", "accountant"}

// config turns the flags and the training settings into a DP-SGD run.
// Settings left at train's defaults take DP-SGD's: batch 256, a constant
// learning rate and no early stopping.
func (df *dpFlags) config(c *cobra.Command, t train.Config, resume bool) (dpsgd.Config, error) {
	def := dpsgd.Defaults(t.Arch)
	f := c.Flags()
	if !f.Changed("batch") {
		t.BatchSize = def.Train.BatchSize
	}
	if !f.Changed("schedule") {
		t.Schedule = def.Train.Schedule
	}
	if !f.Changed("patience") {
		t.Patience = 0
	} else if t.Patience != 0 {
		return dpsgd.Config{}, fmt.Errorf("--dp has no early stopping: drop --patience (the final model is the last epoch's, which is what the privacy record counts)")
	}
	switch {
	case f.Changed("target-epsilon") && f.Changed("noise-multiplier"):
		return dpsgd.Config{}, fmt.Errorf("--dp: give --target-epsilon or --noise-multiplier, not both")
	case !f.Changed("target-epsilon") && !f.Changed("noise-multiplier"):
		return dpsgd.Config{}, fmt.Errorf("--dp needs --target-epsilon (e.g. 3) or --noise-multiplier (e.g. 1.1)")
	case f.Changed("target-epsilon") && !(df.targetEps > 0):
		return dpsgd.Config{}, fmt.Errorf("--target-epsilon must be positive, got %g", df.targetEps)
	case f.Changed("noise-multiplier") && !(df.noise > 0):
		return dpsgd.Config{}, fmt.Errorf("--noise-multiplier must be positive, got %g", df.noise)
	}
	if _, err := accountant.ParseKind(df.accountant); err != nil {
		return dpsgd.Config{}, fmt.Errorf("--accountant: %w", err)
	}
	return dpsgd.Config{
		Train: t, NoiseMultiplier: df.noise, TargetEpsilon: df.targetEps, Delta: df.delta, ClipNorm: df.clip,
		PerLayer: df.perLayer, Sampling: df.sampling, LogicalBatch: df.logicalBatch, PhysicalBatch: df.physicalBatch,
		SecureNoise: df.secure, Accountant: df.accountant, Resume: resume,
	}, nil
}

// defenseFlags choose a training-time defense.
type defenseFlags struct {
	name          string
	eps           float64
	norm          string
	steps         int
	stepSize      float64
	warmup        float64
	cleanFraction float64
	sigma         float64
	beta          float64
}

func (df *defenseFlags) addFlags(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&df.name, "defense", "", "training-time defense: pgd-at (Madry et al.), trades (Zhang et al.), fast-at (FGSM with random start), gaussian (noise augmentation for randomized smoothing)")
	f.Float64Var(&df.eps, "eps", 0, "adversarial training radius (inputs in [0,1])")
	f.StringVar(&df.norm, "norm", "inf", "adversarial training norm: inf, 2 or 1")
	f.IntVar(&df.steps, "attack-steps", 0, "PGD steps per batch (default 10)")
	f.Float64Var(&df.stepSize, "attack-step-size", 0, "PGD step size (default 2.5·eps/steps; fast-at 1.25·eps)")
	f.Float64Var(&df.warmup, "warmup", 0, "fraction of the run over which eps grows linearly from 0")
	f.Float64Var(&df.cleanFraction, "clean-fraction", 0, "pgd-at: fraction of each batch left clean")
	f.Float64Var(&df.sigma, "sigma", 0, "gaussian: noise standard deviation")
	f.Float64Var(&df.beta, "beta", 6, "trades: weight of the robustness (KL) term")
}

// build returns the defense the flags describe, or nil for none.
func (df *defenseFlags) build(c *cobra.Command, seed uint64) (train.BatchDefense, error) {
	switch df.name {
	case "":
		for _, f := range []string{"eps", "norm", "attack-steps", "attack-step-size", "warmup", "clean-fraction", "sigma", "beta"} {
			if c.Flags().Changed(f) {
				return nil, fmt.Errorf("--%s needs --defense", f)
			}
		}
		return nil, nil
	case "gaussian":
		if !(df.sigma > 0) {
			return nil, fmt.Errorf("--defense gaussian needs --sigma > 0 (0.25 is the usual value)")
		}
		return smoothing.Gaussian(df.sigma, seed), nil
	}
	norm, err := attack.ParseNorm(df.norm)
	if err != nil {
		return nil, fmt.Errorf("--norm: %w", err)
	}
	if !c.Flags().Changed("eps") {
		return nil, fmt.Errorf("--defense %s needs --eps (0.1 is usual for Fashion-MNIST at L∞)", df.name)
	}
	p := advtrain.Params{Eps: df.eps, Norm: norm, Steps: df.steps, StepSize: df.stepSize,
		WarmupFraction: df.warmup, CleanFraction: df.cleanFraction, Seed: seed}
	if df.name == "trades" {
		p.Beta = df.beta
	} else if c.Flags().Changed("beta") {
		return nil, fmt.Errorf("--beta is TRADES's weight: it needs --defense trades")
	}
	return advtrain.New(df.name, p)
}

func newTrainCmd(g *globals) *cobra.Command {
	o := &trainOptions{}
	def := train.Defaults("cnn")
	c := &cobra.Command{
		Use:   "train",
		Short: "Train a classifier from the architecture registry",
		Long: `Train a classifier on a dataset and write it as a bulwark .safetensors model.

A fraction of the training split (--val-fraction) is held out, chosen by the
seed, to report validation accuracy and stop early (--patience). A checkpoint
is written next to the output after every epoch (OUT.ckpt); if a run is
interrupted, the same command with --resume continues from it.

--defense trains against an attack (pgd-at, trades, fast-at) or with noise
augmentation for randomized smoothing (gaussian). --dp trains with DP-SGD:
the privacy guarantee (ε at δ, from the accountant) is worked out and
printed before training starts, and recorded in the model's metadata with
the noise multiplier, clipping norm, sampling rate and steps. With --dp
there is no early stopping and the learning rate is constant unless
--schedule says otherwise.`,
		Example: `  bulwark train --data fashion-mnist --arch cnn --epochs 3 --seed 1 --out fm-cnn.safetensors
  bulwark train --data ./tabular.csv --arch mlp --optimizer sgd --lr 0.05 --momentum 0.9 --out tab.safetensors
  bulwark train --data fashion-mnist --arch cnn --defense pgd-at --eps 0.1 --out robust.safetensors
  bulwark train --data fashion-mnist --arch cnn --defense trades --beta 6 --eps 0.1 --out trades.safetensors
  bulwark train --data fashion-mnist --arch cnn --defense gaussian --sigma 0.25 --out smooth.safetensors
  bulwark train --data fashion-mnist --arch cnn --dp --target-epsilon 3 --delta 1e-5 --clip 1.0 --out private.safetensors`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runTrain(c, g, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.data, "data", "", "dataset name (fashion-mnist) or path (IDX folder, .npz, .csv, image folder)")
	f.StringVar(&o.split, "split", "", "split to train on (default: train, or the whole source if it has one split)")
	f.IntVar(&o.n, "n", 0, "use only the first N examples of the split (0: all)")
	f.StringVar(&o.out, "out", "", "output model file (.safetensors)")
	f.BoolVar(&o.resume, "resume", false, "continue from OUT.ckpt left by an interrupted run")
	f.BoolVar(&o.asJSON, "json", false, "print one JSON object with the result")
	f.StringVar(&o.cfg.Arch, "arch", def.Arch, "architecture: "+strings.Join(nn.ArchNames(), ", "))
	f.IntVar(&o.cfg.Epochs, "epochs", def.Epochs, "training epochs")
	f.IntVar(&o.cfg.BatchSize, "batch", def.BatchSize, "mini-batch size")
	f.StringVar(&o.optName, "optimizer", def.Optimizer.Name, "optimizer: adam or sgd")
	f.Float32Var(&o.cfg.LearningRate, "lr", def.LearningRate, "learning rate (peak of the schedule)")
	f.Float32Var(&o.momentum, "momentum", 0.9, "SGD momentum")
	f.Float32Var(&o.wd, "weight-decay", 0, "weight decay (L2 for sgd, decoupled for adam)")
	f.StringVar(&o.cfg.Schedule, "schedule", def.Schedule, "learning-rate schedule: cosine, step or constant")
	f.Uint64Var(&o.cfg.Seed, "seed", def.Seed, "seed for initialisation, shuffling and the validation split")
	f.Float64Var(&o.cfg.ValFraction, "val-fraction", def.ValFraction, "fraction of the split held out for validation")
	f.IntVar(&o.cfg.Patience, "patience", def.Patience, "stop after this many epochs without a better validation loss (0: never)")
	o.defense.addFlags(c)
	o.dp.addFlags(c)
	return c
}

func runTrain(c *cobra.Command, g *globals, o *trainOptions) error {
	if o.data == "" || o.out == "" {
		return &ExitError{Code: ExitInput, Err: fmt.Errorf("--data and --out are required")}
	}
	if ext := strings.ToLower(filepath.Ext(o.out)); ext != ".safetensors" {
		return &ExitError{Code: ExitInput, Err: fmt.Errorf("--out %s: bulwark writes models as .safetensors", o.out)}
	}
	if st, err := os.Stat(filepath.Dir(o.out)); err != nil || !st.IsDir() {
		return &ExitError{Code: ExitInput, Err: fmt.Errorf("--out %s: the folder %s does not exist", o.out, filepath.Dir(o.out))}
	}
	o.cfg.Optimizer = nn.Optimizer{Name: o.optName, WeightDecay: o.wd}
	if o.optName == "sgd" {
		o.cfg.Optimizer.Momentum = o.momentum
	}
	o.cfg.Engine = g.engine
	if err := o.cfg.Validate(); err != nil {
		return err
	}
	def, err := o.defense.build(c, o.cfg.Seed)
	if err != nil {
		return &ExitError{Code: ExitInput, Err: err}
	}
	if def != nil {
		o.cfg.Defense, o.cfg.DefenseName = def, def.Record().Name
	}
	var dpc dpsgd.Config
	if o.dp.on {
		if def != nil {
			return &ExitError{Code: ExitInput, Err: fmt.Errorf("--dp and --defense %s cannot be combined: DP-SGD's guarantee covers plain clipped gradients only", o.defense.name)}
		}
		if dpc, err = o.dp.config(c, o.cfg, o.resume); err != nil {
			return &ExitError{Code: ExitInput, Err: err}
		}
	} else {
		for _, f := range dpOnly {
			if c.Flags().Changed(f) {
				return &ExitError{Code: ExitInput, Err: fmt.Errorf("--%s needs --dp", f)}
			}
		}
	}
	d, err := loadSplit(o.data, o.split, "train")
	if err != nil {
		return err
	}
	d = d.Head(o.n)
	w := c.ErrOrStderr()
	if !o.asJSON && !g.quiet {
		fmt.Fprintf(w, "training %s on %s (%s split, %d examples, shape %v, %d classes)\n", o.cfg.Arch, d.Name, d.Split, d.Len(), d.Shape, d.NumClasses())
	}
	var privacy *model.Privacy
	if o.dp.on {
		// Everything that can be wrong with the privacy settings is an
		// input error found here, before any training.
		if privacy, err = dpsgd.Guarantee(dpc, dpsgd.TrainingSize(dpc, d.Len())); err != nil {
			return &ExitError{Code: ExitInput, Err: fmt.Errorf("--dp: %w", err)}
		}
		if !o.asJSON && !g.quiet {
			fmt.Fprintf(w, "DP-SGD: (ε = %.3f, δ = %g) by the %s accountant for %d steps at sampling rate %.4g (%s), noise multiplier %.4g, clip %g (%s)\n",
				privacy.Epsilon, privacy.Delta, privacy.Accountant, privacy.Steps, privacy.SamplingRate, privacy.Sampling,
				privacy.NoiseMultiplier, privacy.ClipNorm, privacy.Clipping)
			if privacy.Sampling == dpsgd.Shuffle {
				fmt.Fprintln(w, "warning: shuffled batches are not what the accountant assumes (Poisson sampling); the ε above is not a formal guarantee for this run")
			}
		}
		o.cfg = dpc.Train // the epochs the progress lines count
	}
	var bar *progress.Bar
	prog := train.Progress{
		Step: func(epoch, step, steps int, loss float32) {
			if bar == nil && step == 1 {
				bar = progress.New(fmt.Sprintf("epoch %d/%d", epoch, o.cfg.Epochs), steps, g.quiet)
			}
			bar.Set(step, fmt.Sprintf("loss %.4f", loss))
		},
		Epoch: func(e train.EpochResult) {
			bar.Done()
			bar = nil
			if !o.asJSON && !g.quiet {
				fmt.Fprintf(w, "epoch %d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f  (%.1fs)\n",
					e.Epoch, o.cfg.Epochs, e.TrainLoss, e.TrainAccuracy, e.ValLoss, e.ValAccuracy, e.Seconds)
			}
		},
	}
	var res *train.Result
	if o.dp.on {
		res, err = dpsgd.Run(c.Context(), dpc, d, o.out, prog)
	} else {
		res, err = train.Run(c.Context(), o.cfg, d, o.out, o.resume, prog)
	}
	bar.Done()
	if err != nil {
		return err
	}
	if o.asJSON {
		out := map[string]any{
			"model": o.out, "arch": o.cfg.Arch, "data": d.Name, "fingerprint": d.Fingerprint,
			"epochs": res.Epochs, "best_epoch": res.BestEpoch, "seconds": res.Seconds, "engine": res.EngineName,
			"params": res.Model.NumParams(), "stopped": res.Stopped,
		}
		if p := res.Meta.Provenance.Privacy; p != nil {
			out["privacy"] = p
		}
		if ds := res.Meta.Provenance.Defenses; len(ds) > 0 {
			out["defenses"] = ds
		}
		return printJSON(c.OutOrStdout(), out)
	}
	if res.Stopped != "" {
		fmt.Fprintln(w, res.Stopped)
	}
	fmt.Fprintf(c.OutOrStdout(), "wrote %s (%s, %d parameters, best epoch %d, %.1fs on the %s engine)\n",
		o.out, o.cfg.Arch, res.Model.NumParams(), res.BestEpoch, res.Seconds, res.EngineName)
	if p := res.Meta.Provenance.Privacy; p != nil {
		fmt.Fprintf(c.OutOrStdout(), "privacy: (ε = %.3f, δ = %g), %s accountant, recorded in the model\n", p.Epsilon, p.Delta, p.Accountant)
	}
	return nil
}
