package dpsgd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/bulwark-sec/bulwark/data"
	"github.com/bulwark-sec/bulwark/evaluate"
	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/internal/version"
	"github.com/bulwark-sec/bulwark/model"
	"github.com/bulwark-sec/bulwark/nn"
	"github.com/bulwark-sec/bulwark/train"
)

// Run trains on d (the training split; a validation part is held out of it
// when cfg.Train.ValFraction > 0) with DP-SGD and writes the model to out,
// with the privacy record in its metadata. Every setting is checked, and
// the guarantee computed, before any training: δ ≥ 1/N, a clipping norm or
// σ that is not positive, an unreachable target ε, a model with batch norm,
// a logical batch larger than N are errors. A checkpoint is written after
// every epoch; with cfg.Resume the run continues from it (in reproducible
// mode bit for bit as if it had not stopped).
func Run(ctx context.Context, cfg Config, d *data.Dataset, out string, prog train.Progress) (*train.Result, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	trainSet, valSet := d, (*data.Dataset)(nil)
	if f := cfg.Train.ValFraction; f > 0 && f < 1 {
		trainSet, valSet = data.SplitFraction(d, f, cfg.Train.Seed)
		if valSet.Len() == 0 || trainSet.Len() == 0 {
			return nil, fmt.Errorf("dataset %s has %d examples, too few to hold out %.0f%% for validation", d.Name, d.Len(), f*100)
		}
	}
	cfg, s, err := resolve(cfg, trainSet.Len())
	if err != nil {
		return nil, err
	}
	cfgJSON, _ := json.Marshal(cfg)
	g, ck, err := start(cfg, d, out)
	if err != nil {
		return nil, err
	}
	layers, err := engine.ClipLayers(g)
	if err != nil {
		return nil, fmt.Errorf("architecture %s cannot be trained with DP-SGD: %w", cfg.Train.Arch, err)
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("architecture %s has no trainable layers", cfg.Train.Arch)
	}
	net, err := engine.New(g, cfg.Train.Engine)
	if err != nil {
		return nil, err
	}
	tr, err := engine.NewTrainerFor(net, cfg.Train.Optimizer)
	if err != nil {
		return nil, err
	}
	res := &train.Result{EngineName: engine.Name(net)}
	startEpoch := 0
	if ck != nil {
		if err := tr.Restore(ck.Optimizer); err != nil {
			return nil, fmt.Errorf("resuming: %w", err)
		}
		startEpoch = ck.Epoch
		if tr.Steps() != s.epochEnd(startEpoch) {
			return nil, fmt.Errorf("resuming: %s holds %d steps after epoch %d, this run has %d", train.CheckpointPath(out), tr.Steps(), startEpoch, s.epochEnd(startEpoch))
		}
		for _, h := range ck.History {
			b, _ := json.Marshal(h)
			var e train.EpochResult
			_ = json.Unmarshal(b, &e)
			res.Epochs = append(res.Epochs, e)
		}
	}
	meta := newMeta(cfg, s, d, trainSet, valSet, res.EngineName)

	st := &stepper{cfg: cfg, s: s, net: net, tr: tr, set: trainSet, rnd: randomness{secure: cfg.SecureNoise, seed: cfg.Train.Seed}}
	for _, i := range g.Trainable() {
		st.names = append(st.names, g.Params[i].Name)
		st.sizes = append(st.sizes, g.Params[i].Size())
	}
	t0 := time.Now()
	for epoch := startEpoch; epoch < s.epochs; epoch++ {
		te := time.Now()
		var perm []int
		if cfg.Sampling == Shuffle {
			perm = st.rnd.permutation(s.n, epoch+1)
		}
		first, last := s.epochEnd(epoch), s.epochEnd(epoch+1)
		var lossSum float64
		seen, correct := 0, 0
		var lr float32
		for step := first; step < last; step++ {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("training stopped in epoch %d (the checkpoint %s holds epoch %d; resume continues): %w", epoch+1, train.CheckpointPath(out), epoch, err)
			}
			idx := st.sample(step, step-first, perm)
			lr = cfg.Train.LR(float64(step) / float64(s.steps))
			r, err := st.step(step, idx, lr)
			if err != nil {
				return nil, fmt.Errorf("epoch %d step %d: %w", epoch+1, step-first+1, err)
			}
			lossSum += r.loss
			seen += len(idx)
			correct += r.correct
			if prog.Step != nil {
				prog.Step(epoch+1, step-first+1, last-first, float32(r.loss/float64(max(1, len(idx)))))
			}
		}
		er := train.EpochResult{Epoch: epoch + 1, LR: lr}
		if seen > 0 {
			er.TrainLoss, er.TrainAccuracy = lossSum/float64(seen), float64(correct)/float64(seen)
		}
		if valSet != nil {
			v, err := evaluate.Run(ctx, net, valSet, d.Classes, false, nil)
			if err != nil {
				return nil, err
			}
			er.ValLoss, er.ValAccuracy = v.Loss, v.Accuracy
		}
		er.Seconds = time.Since(te).Seconds()
		res.Epochs = append(res.Epochs, er)
		if prog.Epoch != nil {
			prog.Epoch(er)
		}
		if err := checkpoint(out, net, tr, meta, epoch+1, res.Epochs, cfgJSON); err != nil {
			return nil, err
		}
	}
	final, err := net.Params()
	if err != nil {
		return nil, err
	}
	res.BestEpoch = s.epochs
	res.Seconds = time.Since(t0).Seconds()
	meta.Provenance.Created = time.Now().UTC().Format(time.RFC3339)
	meta.Provenance.Metrics = map[string]float64{"best_epoch": float64(s.epochs), "train_seconds": res.Seconds}
	if valSet != nil && len(res.Epochs) > 0 {
		e := res.Epochs[len(res.Epochs)-1]
		meta.Provenance.Metrics["val_accuracy"] = e.ValAccuracy
		meta.Provenance.Metrics["val_loss"] = e.ValLoss
	}
	if err := model.SaveNative(out, final, meta); err != nil {
		return nil, err
	}
	if err := os.Remove(train.CheckpointPath(out)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	res.Model, res.Meta = final, meta
	return res, nil
}

// start builds the model, or loads it from the checkpoint when resuming
// after checking that the checkpoint was written by the same settings.
func start(cfg Config, d *data.Dataset, out string) (*nn.Graph, *model.Checkpoint, error) {
	if !cfg.Resume {
		g, err := nn.Build(cfg.Train.Arch, d.Shape, d.NumClasses(), cfg.Train.Seed)
		return g, nil, err
	}
	path := train.CheckpointPath(out)
	g, meta, ck, err := model.LoadNative(path)
	if err != nil {
		return nil, nil, fmt.Errorf("resuming: %w", err)
	}
	if ck == nil {
		return nil, nil, fmt.Errorf("resuming: %s holds no training state", path)
	}
	var saved Config
	if err := json.Unmarshal(ck.Config, &saved); err != nil {
		return nil, nil, fmt.Errorf("resuming: %s: %w", path, err)
	}
	// Everything but the engine must match: the guarantee covers the
	// whole run, so its parameters cannot change halfway.
	a, b := saved, cfg
	a.Train.Engine, b.Train.Engine = "", ""
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		return nil, nil, fmt.Errorf("resuming: %s was written by a DP-SGD run with different settings (%s); use the same settings or start over", path, ck.Config)
	}
	if meta.Provenance.DatasetFingerprint != d.Fingerprint {
		return nil, nil, fmt.Errorf("resuming: %s was trained on data %s, this is %s", path, meta.Provenance.DatasetFingerprint, d.Fingerprint)
	}
	return g, ck, nil
}

func newMeta(cfg Config, s *schedule, d, trainSet, valSet *data.Dataset, engineName string) model.Meta {
	tc := cfg.Train
	meta := model.Meta{
		Arch:       tc.Arch,
		Classes:    d.Classes,
		Preprocess: model.Preprocess{Scale: d.Preprocess.Scale, Layout: d.Preprocess.Layout},
		Provenance: model.Provenance{
			Dataset: d.Name, DatasetFingerprint: d.Fingerprint, Split: d.Split,
			TrainExamples: trainSet.Len(), ValidationFraction: tc.ValFraction, SplitSeed: tc.Seed,
			Seed: tc.Seed, Epochs: tc.Epochs, BatchSize: cfg.LogicalBatch, Optimizer: tc.Optimizer,
			LearningRate: tc.LearningRate, Schedule: tc.Schedule, Engine: engineName,
			BulwarkVersion: version.Version,
			Privacy:        s.record(cfg),
		},
	}
	if valSet != nil {
		meta.Provenance.ValidationExamples = valSet.Len()
	}
	p := meta.Provenance.Privacy
	meta.Provenance.Defenses = append(meta.Provenance.Defenses, model.Defense{Name: "dp-sgd", Params: map[string]any{
		"epsilon": p.Epsilon, "delta": p.Delta, "noise_multiplier": p.NoiseMultiplier, "clip_norm": p.ClipNorm,
		"clipping": p.Clipping, "sampling": p.Sampling, "secure_noise": cfg.SecureNoise,
	}})
	if d.Preprocess.Layout != data.LayoutFeatures {
		meta.Preprocess.Range = &[2]float32{0, 1}
	}
	return meta
}

func checkpoint(out string, net engine.Net, tr engine.Trainer, meta model.Meta, epoch int, hist []train.EpochResult, cfgJSON []byte) error {
	cur, err := net.Params()
	if err != nil {
		return err
	}
	st, err := tr.State()
	if err != nil {
		return err
	}
	ck := &model.Checkpoint{Epoch: epoch, Optimizer: st, BestEpoch: epoch, Config: cfgJSON}
	for _, e := range hist {
		var h map[string]any
		b, _ := json.Marshal(e)
		_ = json.Unmarshal(b, &h)
		ck.History = append(ck.History, h)
	}
	return model.SaveCheckpoint(train.CheckpointPath(out), cur, meta, ck)
}
