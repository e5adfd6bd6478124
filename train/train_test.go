package train

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/bulwark-sec/bulwark/data"
	"github.com/bulwark-sec/bulwark/model"
	"github.com/bulwark-sec/bulwark/nn"
)

// blobs is a separable 3-class problem in 6 features: each class is a
// Gaussian around its own centre.
func blobs(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	d := &data.Dataset{Name: "blobs", Shape: []int{6}, Classes: []string{"a", "b", "c"}, Fingerprint: "sha256:test",
		Preprocess: data.Preprocess{Scale: 1, Layout: "features"}}
	for i := 0; i < n; i++ {
		y := i % 3
		for f := 0; f < 6; f++ {
			c := 0.0
			if f%3 == y {
				c = 2
			}
			d.X = append(d.X, float32(c+rng.NormFloat64()*0.5))
		}
		d.Y = append(d.Y, y)
	}
	return d
}

func TestTrainingLearnsAndRecordsProvenance(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.safetensors")
	cfg := Defaults("mlp")
	cfg.Epochs, cfg.BatchSize = 4, 32
	res, err := Run(context.Background(), cfg, blobs(600, 1), out, false, Progress{})
	if err != nil {
		t.Fatal(err)
	}
	last := res.Epochs[len(res.Epochs)-1]
	if last.ValAccuracy < 0.95 {
		t.Fatalf("validation accuracy %.3f on separable blobs", last.ValAccuracy)
	}
	g, meta, ck, err := model.LoadNative(out)
	if err != nil {
		t.Fatal(err)
	}
	if ck != nil {
		t.Error("final model carries checkpoint state")
	}
	if meta.Arch != "mlp" || meta.Provenance.Seed != 1 || meta.Provenance.DatasetFingerprint != "sha256:test" ||
		meta.Provenance.TrainExamples != 540 || meta.Provenance.ValidationExamples != 60 || meta.Classes[2] != "c" {
		t.Errorf("provenance not recorded: %+v", meta)
	}
	if g.NumParams() != res.Model.NumParams() {
		t.Error("saved graph differs from the trained one")
	}
}

// TestResumeGivesTheSameModel interrupts a run after its first epoch and
// resumes it: the result must equal an uninterrupted run's.
func TestResumeGivesTheSameModel(t *testing.T) {
	dir := t.TempDir()
	d := blobs(300, 2)
	cfg := Defaults("mlp")
	cfg.Epochs, cfg.BatchSize, cfg.Patience = 3, 32, 0
	straight, err := Run(context.Background(), cfg, d, filepath.Join(dir, "a.safetensors"), false, Progress{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "b.safetensors")
	ctx, cancel := context.WithCancel(context.Background())
	_, err = Run(ctx, cfg, d, out, false, Progress{Epoch: func(e EpochResult) {
		if e.Epoch == 1 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	if _, _, ck, err := model.LoadNative(CheckpointPath(out)); err != nil || ck == nil || ck.Epoch != 1 {
		t.Fatalf("checkpoint after epoch 1: %v %+v", err, ck)
	}
	resumed, err := Run(context.Background(), cfg, d, out, true, Progress{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resumed.Epochs) != 3 {
		t.Fatalf("resumed run reports %d epochs", len(resumed.Epochs))
	}
	for i, p := range straight.Model.Params {
		q := resumed.Model.Params[i]
		for j := range p.Data {
			if p.Data[j] != q.Data[j] {
				t.Fatalf("parameter %s[%d]: %g uninterrupted, %g resumed", p.Name, j, p.Data[j], q.Data[j])
			}
		}
	}
	// A resume with other settings is refused.
	cfg.Seed = 9
	if _, err := Run(context.Background(), cfg, d, out, true, Progress{}); err == nil {
		t.Error("resumed without a checkpoint, or with different settings")
	}
}

func TestEarlyStoppingKeepsBestEpoch(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.safetensors")
	cfg := Defaults("mlp")
	// A learning rate this high makes validation loss worse after the first
	// epochs, so patience 1 must stop early and keep the best epoch.
	cfg.Epochs, cfg.BatchSize, cfg.Patience, cfg.Schedule, cfg.LearningRate = 30, 16, 1, "constant", 0.05
	res, err := Run(context.Background(), cfg, blobs(300, 3), out, false, Progress{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopped == "" || len(res.Epochs) == 30 {
		t.Fatalf("did not stop early: %d epochs", len(res.Epochs))
	}
	best := res.Epochs[res.BestEpoch-1].ValLoss
	for _, e := range res.Epochs {
		if e.ValLoss < best {
			t.Fatalf("best epoch %d (val loss %g) is not the lowest (%g at %d)", res.BestEpoch, best, e.ValLoss, e.Epoch)
		}
	}
}

func TestBadConfigAndDataRefusedBeforeTraining(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.safetensors")
	for _, mod := range []func(*Config){
		func(c *Config) { c.Epochs = 0 },
		func(c *Config) { c.LearningRate = -1 },
		func(c *Config) { c.ValFraction = 1 },
		func(c *Config) { c.Optimizer = nn.Optimizer{Name: "rmsprop"} },
		func(c *Config) { c.Arch = "cnn" }, // needs images
	} {
		cfg := Defaults("mlp")
		mod(&cfg)
		if _, err := Run(context.Background(), cfg, blobs(30, 1), out, false, Progress{}); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	d := blobs(30, 1)
	d.X[7] = float32(nan())
	if _, err := Run(context.Background(), Defaults("mlp"), d, out, false, Progress{}); err == nil {
		t.Error("NaN in the data accepted")
	}
}

func nan() float64 { z := 0.0; return z / z }
