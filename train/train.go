// Package train fits a classifier from the architecture registry to a
// dataset: seeded shuffling, mini-batches, a learning-rate schedule, a
// validation split with early stopping, and a checkpoint after every epoch
// so that an interrupted run resumes where it stopped.
package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/bulwark-sec/bulwark/data"
	"github.com/bulwark-sec/bulwark/evaluate"
	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/internal/version"
	"github.com/bulwark-sec/bulwark/model"
	"github.com/bulwark-sec/bulwark/nn"
)

// Config is a training run. Zero values mean the defaults of Defaults.
type Config struct {
	Arch         string       `json:"arch"`
	Epochs       int          `json:"epochs"`
	BatchSize    int          `json:"batch_size"`
	Optimizer    nn.Optimizer `json:"optimizer"`
	LearningRate float32      `json:"learning_rate"`
	// Schedule is "cosine" (decay to 0 over the run), "step" (x0.1 at 50%
	// and 75% of the epochs) or "constant".
	Schedule string `json:"schedule"`
	Seed     uint64 `json:"seed"`
	// ValFraction of the training split is held out for validation and
	// early stopping.
	ValFraction float64 `json:"val_fraction"`
	// Patience stops after this many epochs without a better validation
	// loss; 0 trains every epoch. The best epoch's parameters are kept.
	Patience int    `json:"patience"`
	Engine   string `json:"engine"`
	// Defense, when set, transforms every training batch on the current
	// model before the optimiser step (adversarial training replaces it
	// with adversarial examples, noise augmentation adds noise). Its
	// Record goes into the model's metadata.
	Defense BatchDefense `json:"-"`
	// DefenseName is Defense's name, kept in the checkpoint's config so a
	// resumed run must use the same defense.
	DefenseName string `json:"defense,omitempty"`
}

// BatchDefense is a training-time defense that works batch by batch.
type BatchDefense interface {
	// Transform returns the inputs to train on for the batch x (n examples
	// with labels y; the result may reuse x's memory). progress is the
	// fraction of the run done, in [0, 1], for warm-up schedules.
	Transform(ctx context.Context, net engine.Net, x []float32, y []int, n int, progress float64) ([]float32, error)
	// Record describes the defense for the model's metadata.
	Record() model.Defense
}

// StepDefense is a BatchDefense whose loss is not cross-entropy on one
// batch of inputs (TRADES: clean cross-entropy plus a KL term between the
// clean and the adversarial predictions), so it computes the gradients and
// takes the optimiser step itself; Run calls Step instead of Transform and
// Trainer.Step. Check runs once before training, so that a defense that
// cannot work with the architecture fails before any work.
type StepDefense interface {
	BatchDefense
	Check(net engine.Net) error
	// Step trains on the batch x (n examples, labels y) with learning rate
	// lr; its result describes the batch before the update.
	Step(ctx context.Context, net engine.Net, tr engine.Trainer, x []float32, y []int, n int, lr float32, progress float64) (nn.StepResult, error)
}

// Defaults are the settings of `bulwark train` with no flags.
func Defaults(arch string) Config {
	return Config{Arch: arch, Epochs: 5, BatchSize: 128, Optimizer: nn.Optimizer{Name: "adam"}, LearningRate: 1e-3,
		Schedule: "cosine", Seed: 1, ValFraction: 0.1, Patience: 3}
}

// Validate checks the configuration before any work starts.
func (c *Config) Validate() error {
	switch {
	case c.Epochs < 1:
		return fmt.Errorf("epochs must be at least 1, got %d", c.Epochs)
	case c.BatchSize < 1:
		return fmt.Errorf("batch size must be at least 1, got %d", c.BatchSize)
	case !(c.LearningRate > 0) || math.IsInf(float64(c.LearningRate), 0):
		return fmt.Errorf("learning rate must be positive, got %g", c.LearningRate)
	case c.ValFraction < 0 || c.ValFraction >= 1:
		return fmt.Errorf("validation fraction must be in [0, 1), got %g", c.ValFraction)
	case c.Patience < 0:
		return fmt.Errorf("patience must be >= 0, got %d", c.Patience)
	}
	switch c.Schedule {
	case "cosine", "step", "constant":
	default:
		return fmt.Errorf("unknown schedule %q (cosine, step, constant)", c.Schedule)
	}
	switch c.Optimizer.Name {
	case "sgd", "adam":
	default:
		return fmt.Errorf("unknown optimizer %q (sgd, adam)", c.Optimizer.Name)
	}
	return nil
}

// LR is the learning rate at a point of the run (progress in [0, 1]).
func (c *Config) LR(progress float64) float32 {
	switch c.Schedule {
	case "cosine":
		return float32(float64(c.LearningRate) * 0.5 * (1 + math.Cos(math.Pi*progress)))
	case "step":
		switch {
		case progress >= 0.75:
			return c.LearningRate * 0.01
		case progress >= 0.5:
			return c.LearningRate * 0.1
		}
	}
	return c.LearningRate
}

// Progress reports training as it goes. Any field may be nil.
type Progress struct {
	Step  func(epoch, step, steps int, loss float32)
	Epoch func(e EpochResult)
}

// EpochResult summarises one epoch.
type EpochResult struct {
	Epoch         int     `json:"epoch"`
	TrainLoss     float64 `json:"train_loss"`
	TrainAccuracy float64 `json:"train_accuracy"`
	ValLoss       float64 `json:"val_loss,omitempty"`
	ValAccuracy   float64 `json:"val_accuracy,omitempty"`
	Seconds       float64 `json:"seconds"`
	LR            float32 `json:"lr"`
}

// Result is a finished run.
type Result struct {
	Model      *nn.Graph
	Meta       model.Meta
	Epochs     []EpochResult
	BestEpoch  int
	Seconds    float64
	EngineName string
	Stopped    string // why training ended before Epochs, if it did
}

// CheckpointPath is where the run writing out keeps its checkpoint.
func CheckpointPath(out string) string { return out + ".ckpt" }

// Run trains on d (the training split; the validation part is carved out
// of it) and writes the model to out. With resume it continues from the
// checkpoint of an earlier run with the same out.
func Run(ctx context.Context, cfg Config, d *data.Dataset, out string, resume bool, prog Progress) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	trainSet, valSet := d, (*data.Dataset)(nil)
	if cfg.ValFraction > 0 {
		trainSet, valSet = data.SplitFraction(d, cfg.ValFraction, cfg.Seed)
		if valSet.Len() == 0 || trainSet.Len() == 0 {
			return nil, fmt.Errorf("dataset %s has %d examples, too few to hold out %.0f%% for validation", d.Name, d.Len(), cfg.ValFraction*100)
		}
	}
	cfgJSON, _ := json.Marshal(cfg)

	var g *nn.Graph
	var ck *model.Checkpoint
	if resume {
		var err error
		var meta model.Meta
		g, meta, ck, err = model.LoadNative(CheckpointPath(out))
		if err != nil {
			return nil, fmt.Errorf("resuming: %w", err)
		}
		if ck == nil {
			return nil, fmt.Errorf("resuming: %s holds no training state", CheckpointPath(out))
		}
		var saved Config
		if err := json.Unmarshal(ck.Config, &saved); err != nil {
			return nil, fmt.Errorf("resuming: %s: %w", CheckpointPath(out), err)
		}
		if saved.Arch != cfg.Arch || saved.Seed != cfg.Seed || saved.BatchSize != cfg.BatchSize || saved.Optimizer != cfg.Optimizer || saved.DefenseName != cfg.DefenseName {
			return nil, fmt.Errorf("resuming: %s was written by a run with different settings (%s); use the same flags or start over", CheckpointPath(out), ck.Config)
		}
		if meta.Provenance.DatasetFingerprint != d.Fingerprint {
			return nil, fmt.Errorf("resuming: %s was trained on data %s, this is %s", CheckpointPath(out), meta.Provenance.DatasetFingerprint, d.Fingerprint)
		}
	} else {
		var err error
		g, err = nn.Build(cfg.Arch, d.Shape, d.NumClasses(), cfg.Seed)
		if err != nil {
			return nil, err
		}
	}
	net, err := engine.New(g, cfg.Engine)
	if err != nil {
		return nil, err
	}
	if sd, ok := cfg.Defense.(StepDefense); ok {
		if err := sd.Check(net); err != nil {
			return nil, fmt.Errorf("%s cannot train %s: %w", sd.Record().Name, cfg.Arch, err)
		}
	}
	tr, err := engine.NewTrainerFor(net, cfg.Optimizer)
	if err != nil {
		return nil, err
	}
	res := &Result{EngineName: engine.Name(net)}
	startEpoch := 0
	best := math.Inf(1)
	bestEpoch, bad := 0, 0
	var bestParams *nn.Graph
	if ck != nil {
		if err := tr.Restore(ck.Optimizer); err != nil {
			return nil, fmt.Errorf("resuming: %w", err)
		}
		startEpoch, best, bestEpoch, bad = ck.Epoch, ck.BestLoss, ck.BestEpoch, ck.BadEpochs
		if len(ck.BestParams) > 0 {
			bestParams = g.Clone()
			for i := range bestParams.Params {
				if v, ok := ck.BestParams[bestParams.Params[i].Name]; ok {
					bestParams.Params[i].Data = v
				}
			}
		}
		for _, h := range ck.History {
			b, _ := json.Marshal(h)
			var e EpochResult
			_ = json.Unmarshal(b, &e)
			res.Epochs = append(res.Epochs, e)
		}
	}
	meta := model.Meta{
		Arch:       cfg.Arch,
		Classes:    d.Classes,
		Preprocess: model.Preprocess{Scale: d.Preprocess.Scale, Layout: d.Preprocess.Layout},
		Provenance: model.Provenance{
			Dataset: d.Name, DatasetFingerprint: d.Fingerprint, Split: d.Split,
			TrainExamples: trainSet.Len(), ValidationFraction: cfg.ValFraction, SplitSeed: cfg.Seed,
			Seed: cfg.Seed, Epochs: cfg.Epochs, BatchSize: cfg.BatchSize, Optimizer: cfg.Optimizer,
			LearningRate: cfg.LearningRate, Schedule: cfg.Schedule, Engine: res.EngineName,
			BulwarkVersion: version.Version,
		},
	}
	if valSet != nil {
		meta.Provenance.ValidationExamples = valSet.Len()
	}
	if cfg.Defense != nil {
		meta.Provenance.Defenses = append(meta.Provenance.Defenses, cfg.Defense.Record())
	}
	if d.Preprocess.Layout != "features" {
		meta.Preprocess.Range = &[2]float32{0, 1}
	}

	start := time.Now()
	n := trainSet.Len()
	size := nn.Numel(trainSet.Shape)
	steps := (n + cfg.BatchSize - 1) / cfg.BatchSize
	xb := make([]float32, cfg.BatchSize*size)
	yb := make([]int, cfg.BatchSize)
	for epoch := startEpoch; epoch < cfg.Epochs; epoch++ {
		t0 := time.Now()
		// The order depends only on the seed and the epoch, so a resumed
		// run sees the same batches as an uninterrupted one.
		order := rand.New(rand.NewPCG(cfg.Seed, uint64(epoch)+1)).Perm(n)
		var lossSum float64
		correct := 0
		var lr float32
		for s := 0; s < steps; s++ {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("training stopped in epoch %d (the checkpoint %s holds epoch %d; --resume continues): %w", epoch+1, CheckpointPath(out), epoch, err)
			}
			lo, hi := s*cfg.BatchSize, min(n, (s+1)*cfg.BatchSize)
			for i, idx := range order[lo:hi] {
				copy(xb[i*size:(i+1)*size], trainSet.Example(idx))
				yb[i] = trainSet.Y[idx]
			}
			progress := (float64(epoch) + float64(s)/float64(steps)) / float64(cfg.Epochs)
			lr = cfg.LR(progress)
			xs := xb[:(hi-lo)*size]
			var r nn.StepResult
			if sd, ok := cfg.Defense.(StepDefense); ok {
				if r, err = sd.Step(ctx, net, tr, xs, yb[:hi-lo], hi-lo, lr, progress); err != nil {
					return nil, fmt.Errorf("%s in epoch %d step %d: %w", cfg.Defense.Record().Name, epoch+1, s+1, err)
				}
			} else {
				if cfg.Defense != nil {
					if xs, err = cfg.Defense.Transform(ctx, net, xs, yb[:hi-lo], hi-lo, progress); err != nil {
						return nil, fmt.Errorf("%s in epoch %d step %d: %w", cfg.Defense.Record().Name, epoch+1, s+1, err)
					}
				}
				if r, err = tr.Step(xs, yb[:hi-lo], hi-lo, lr); err != nil {
					return nil, err
				}
			}
			if math.IsNaN(float64(r.Loss)) || math.IsInf(float64(r.Loss), 0) {
				return nil, fmt.Errorf("training diverged in epoch %d step %d (loss %v); lower the learning rate (now %g)", epoch+1, s+1, r.Loss, lr)
			}
			lossSum += float64(r.Loss) * float64(hi-lo)
			correct += r.Correct
			if prog.Step != nil {
				prog.Step(epoch+1, s+1, steps, r.Loss)
			}
		}
		er := EpochResult{Epoch: epoch + 1, TrainLoss: lossSum / float64(n), TrainAccuracy: float64(correct) / float64(n), LR: lr}
		improved := true
		if valSet != nil {
			v, err := evaluate.Run(ctx, net, valSet, d.Classes, false, nil)
			if err != nil {
				return nil, err
			}
			er.ValLoss, er.ValAccuracy = v.Loss, v.Accuracy
			improved = v.Loss < best
			if improved {
				best, bestEpoch, bad = v.Loss, epoch+1, 0
			} else {
				bad++
			}
		} else {
			bestEpoch = epoch + 1
		}
		cur, err := net.Params()
		if err != nil {
			return nil, err
		}
		if improved {
			bestParams = cur
		}
		er.Seconds = time.Since(t0).Seconds()
		res.Epochs = append(res.Epochs, er)
		if prog.Epoch != nil {
			prog.Epoch(er)
		}
		st, err := tr.State()
		if err != nil {
			return nil, err
		}
		nck := &model.Checkpoint{Epoch: epoch + 1, Optimizer: st, BestLoss: best, BestEpoch: bestEpoch, BadEpochs: bad, Config: cfgJSON}
		for _, e := range res.Epochs {
			var h map[string]any
			b, _ := json.Marshal(e)
			_ = json.Unmarshal(b, &h)
			nck.History = append(nck.History, h)
		}
		if bestParams != nil {
			nck.BestParams = map[string][]float32{}
			for _, p := range bestParams.Params {
				nck.BestParams[p.Name] = p.Data
			}
		}
		if err := model.SaveCheckpoint(CheckpointPath(out), cur, meta, nck); err != nil {
			return nil, err
		}
		if cfg.Patience > 0 && bad >= cfg.Patience {
			res.Stopped = fmt.Sprintf("early stopping: no better validation loss for %d epochs", bad)
			break
		}
	}
	final := bestParams
	if final == nil {
		var err error
		if final, err = net.Params(); err != nil {
			return nil, err
		}
	}
	res.BestEpoch = bestEpoch
	res.Seconds = time.Since(start).Seconds()
	meta.Provenance.Created = time.Now().UTC().Format(time.RFC3339)
	meta.Provenance.Metrics = map[string]float64{"best_epoch": float64(bestEpoch), "train_seconds": res.Seconds}
	if bestEpoch > 0 && bestEpoch <= len(res.Epochs) {
		e := res.Epochs[bestEpoch-1]
		meta.Provenance.Metrics["val_accuracy"] = e.ValAccuracy
		meta.Provenance.Metrics["val_loss"] = e.ValLoss
	}
	if err := model.SaveNative(out, final, meta); err != nil {
		return nil, err
	}
	if err := os.Remove(CheckpointPath(out)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	res.Model, res.Meta = final, meta
	return res, nil
}
