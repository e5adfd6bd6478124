package advtrain_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/attack"
	"github.com/bulwark-sec/bulwark/attack/attacktest"
	"github.com/bulwark-sec/bulwark/data"
	"github.com/bulwark-sec/bulwark/defense/advtrain"
	"github.com/bulwark-sec/bulwark/internal/engine"
	"github.com/bulwark-sec/bulwark/model"
	"github.com/bulwark-sec/bulwark/train"
)

func mustNew(t *testing.T, kind string, p advtrain.Params) train.BatchDefense {
	t.Helper()
	d, err := advtrain.New(kind, p)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBadParamsRefused(t *testing.T) {
	for _, tc := range []struct {
		kind string
		p    advtrain.Params
		want string
	}{
		{"pgd-at", advtrain.Params{}, "eps must be"},
		{"pgd-at", advtrain.Params{Eps: -0.1}, "eps must be"},
		{"pgd-at", advtrain.Params{Eps: math.NaN()}, "eps must be"},
		{"pgd-at", advtrain.Params{Eps: 1.5}, "larger than the whole"},
		{"fast-at", advtrain.Params{Eps: 1.5, Norm: attack.Linf}, "larger than the whole"},
		{"pgd-at", advtrain.Params{Eps: 0.1, Steps: -1}, "steps must be at least 1"},
		{"pgd-at", advtrain.Params{Eps: 0.1, StepSize: -1}, "step size"},
		{"pgd-at", advtrain.Params{Eps: 0.1, WarmupFraction: 1}, "warm-up fraction"},
		{"pgd-at", advtrain.Params{Eps: 0.1, CleanFraction: -0.5}, "clean fraction"},
		{"pgd-at", advtrain.Params{Eps: 0.1, Norm: "3"}, "norm"},
		{"fast-at", advtrain.Params{Eps: 0.1, Steps: 5}, "one FGSM step"},
		{"fast-at", advtrain.Params{Eps: 0.5, Norm: attack.L2}, "L∞ only"},
		{"fast-at", advtrain.Params{Eps: 0.1, CleanFraction: 0.5}, "clean fraction needs pgd-at"},
		{"trades", advtrain.Params{Eps: 0.5, Norm: attack.L2}, "L∞ only"},
		{"trades", advtrain.Params{Eps: 0.1, CleanFraction: 0.5}, "clean term"},
		{"trades", advtrain.Params{Eps: 0.1, Beta: -1}, "beta must be"},
		{"trades", advtrain.Params{Eps: 0.1, Beta: math.Inf(1)}, "beta must be"},
		{"pgd-at", advtrain.Params{Eps: 0.1, Beta: 6}, "TRADES's weight"},
		{"free-at", advtrain.Params{Eps: 0.1}, "unknown adversarial training"},
	} {
		_, err := advtrain.New(tc.kind, tc.p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %+v) = %v, want an error with %q", tc.kind, tc.p, err, tc.want)
		}
	}
	// L2 eps above 1 is a valid threat model.
	if _, err := advtrain.New("pgd-at", advtrain.Params{Eps: 2, Norm: attack.L2}); err != nil {
		t.Errorf("L2 eps 2: %v", err)
	}
}

func TestRecord(t *testing.T) {
	for _, tc := range []struct {
		kind string
		p    advtrain.Params
		want map[string]any
	}{
		{"pgd-at", advtrain.Params{Eps: 0.1, Seed: 4}, map[string]any{
			"eps": 0.1, "norm": "inf", "steps": 10, "step_size": 0.025, "warmup_fraction": 0.0, "clean_fraction": 0.0,
			"seed": uint64(4), "random_start": true, "attack": "evasion.pgd", "attack_version": 1, "batch_norm": "inference", "version": 1}},
		{"fast-at", advtrain.Params{Eps: 0.2, WarmupFraction: 0.3}, map[string]any{
			"eps": 0.2, "norm": "inf", "steps": 1, "step_size": 1.25 * 0.2, "warmup_fraction": 0.3, "clean_fraction": 0.0,
			"seed": uint64(0), "random_start": true, "attack": "evasion.pgd"}},
		{"pgd-at", advtrain.Params{Eps: 1, Norm: attack.L2, Steps: 7, StepSize: 0.3, CleanFraction: 0.5}, map[string]any{
			"eps": 1.0, "norm": "2", "steps": 7, "step_size": 0.3, "clean_fraction": 0.5}},
		{"trades", advtrain.Params{Eps: 0.1}, map[string]any{
			"eps": 0.1, "norm": "inf", "steps": 10, "step_size": 0.025, "beta": 6.0, "attack": "trades-kl-pgd"}},
		{"trades", advtrain.Params{Eps: 0.1, Beta: 1}, map[string]any{"beta": 1.0}},
	} {
		r := mustNew(t, tc.kind, tc.p).Record()
		if r.Name != tc.kind {
			t.Errorf("record name %q, want %q", r.Name, tc.kind)
		}
		for k, v := range tc.want {
			if r.Params[k] != v {
				t.Errorf("%s record %s = %#v, want %#v", tc.kind, k, r.Params[k], v)
			}
		}
	}
}

// accuracy is the share of the n examples x net classifies as y.
func accuracy(t *testing.T, net engine.Net, x []float32, y []int) float64 {
	t.Helper()
	z, err := net.Logits(x, len(y))
	if err != nil {
		t.Fatal(err)
	}
	k := net.NumClasses()
	ok := 0
	for i, l := range y {
		row := z[i*k : (i+1)*k]
		if slices.Index(row, slices.Max(row)) == l {
			ok++
		}
	}
	return float64(ok) / float64(len(y))
}

// Transform gives examples within eps of the batch and inside [0, 1] that
// the current model gets wrong far more often than the clean ones; only
// the examples outside the clean fraction change, and during warm-up the
// perturbation shrinks with eps.
func TestTransformCraftsAdversarialExamples(t *testing.T) {
	net, ds := attacktest.Fashion(t, "mlp", 5000, 2, 256)
	size := len(ds.X) / ds.Len()
	const eps = 0.1
	for _, tc := range []struct {
		kind     string
		p        advtrain.Params
		progress float64
		maxDist  float64 // the radius at this progress
		clean    int     // examples left clean
	}{
		{"pgd-at", advtrain.Params{Eps: eps, Seed: 1}, 0.5, eps, 0},
		{"fast-at", advtrain.Params{Eps: eps, Seed: 1}, 0.5, eps, 0},
		{"pgd-at", advtrain.Params{Eps: eps, Seed: 1, CleanFraction: 0.25}, 0.5, eps, 64},
		{"pgd-at", advtrain.Params{Eps: eps, Seed: 1, WarmupFraction: 0.5}, 0.25, eps / 2, 0},
		{"pgd-at", advtrain.Params{Eps: eps, Seed: 1, WarmupFraction: 0.5}, 0, 0, 256},
	} {
		x := slices.Clone(ds.X)
		adv, err := mustNew(t, tc.kind, tc.p).Transform(context.Background(), net, x, ds.Y, ds.Len(), tc.progress)
		if err != nil {
			t.Fatal(err)
		}
		dist, unchanged := 0.0, 0
		for i := range ds.Len() {
			d := attack.Linf.Distance(adv[i*size:(i+1)*size], ds.X[i*size:(i+1)*size])
			dist = max(dist, d)
			if d == 0 {
				unchanged++
			}
		}
		for _, v := range adv {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("%s: value %v outside [0, 1]", tc.kind, v)
			}
		}
		clean, robust := accuracy(t, net, ds.X, ds.Y), accuracy(t, net, adv, ds.Y)
		t.Logf("%s %+v at %.2f: clean accuracy %.3f, on the transformed batch %.3f, L∞ %.4f, %d unchanged",
			tc.kind, tc.p, tc.progress, clean, robust, dist, unchanged)
		switch {
		case dist > tc.maxDist+1e-6:
			t.Errorf("%s: perturbation %v beyond eps %v", tc.kind, dist, tc.maxDist)
		case tc.maxDist > 0 && dist < tc.maxDist*0.99:
			t.Errorf("%s: largest perturbation %v, the attack does not reach the radius %v", tc.kind, dist, tc.maxDist)
		case unchanged != tc.clean:
			t.Errorf("%s: %d examples unchanged, want %d", tc.kind, unchanged, tc.clean)
		case tc.maxDist == eps && robust > clean-0.3:
			t.Errorf("%s: accuracy %.3f on the transformed batch, %.3f clean: not adversarial", tc.kind, robust, clean)
		}
	}
}

// The random starts depend on the seed and on the point of the run, and on
// nothing else: the same call gives the same batch, another batch or seed
// another one.
func TestTransformDeterministic(t *testing.T) {
	net, ds := attacktest.Fashion(t, "mlp", 5000, 2, 256)
	x := ds.X[:32*len(ds.X)/ds.Len()]
	y := ds.Y[:32]
	run := func(kind string, seed uint64, progress float64) []float32 {
		out, err := mustNew(t, kind, advtrain.Params{Eps: 0.1, Seed: seed}).Transform(context.Background(), net, slices.Clone(x), y, 32, progress)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, kind := range advtrain.Kinds {
		a := run(kind, 1, 0.5)
		if !slices.Equal(a, run(kind, 1, 0.5)) {
			t.Errorf("%s: the same seed and progress give different batches", kind)
		}
		if slices.Equal(a, run(kind, 2, 0.5)) {
			t.Errorf("%s: seeds 1 and 2 give the same batch", kind)
		}
		if slices.Equal(a, run(kind, 1, 0.51)) {
			t.Errorf("%s: two points of the run give the same batch", kind)
		}
	}
}

// Inputs outside [0, 1] (tabular features) are refused, not clipped.
func TestTransformRefusesFeatures(t *testing.T) {
	net, _ := attacktest.Fashion(t, "mlp", 5000, 2, 256)
	x := make([]float32, 2*net.InputSize())
	x[5] = 3
	_, err := mustNew(t, "pgd-at", advtrain.Params{Eps: 0.1}).Transform(context.Background(), net, x, []int{0, 1}, 2, 0.5)
	if err == nil || !strings.Contains(err.Error(), "[0, 1]") {
		t.Errorf("input 3 accepted: %v", err)
	}
}

// A run with pgd-at interrupted after its first epoch and resumed ends
// with exactly the parameters of the uninterrupted run (the defense keeps
// no state the checkpoint would lose), and the model records the defense.
func TestResumeWithDefenseGivesTheSameModel(t *testing.T) {
	tr, err := data.Load("fashion-mnist", "train")
	if err != nil {
		t.Fatal(err)
	}
	tr = tr.Head(600)
	for _, kind := range []string{"pgd-at", "trades"} {
		t.Run(kind, func(t *testing.T) { resumeGivesTheSameModel(t, kind, tr) })
	}
}

func resumeGivesTheSameModel(t *testing.T, kind string, tr *data.Dataset) {
	def := mustNew(t, kind, advtrain.Params{Eps: 0.1, Steps: 3, Seed: 5, WarmupFraction: 0.5})
	cfg := train.Defaults("mlp")
	cfg.Epochs, cfg.Patience, cfg.BatchSize, cfg.Defense, cfg.DefenseName = 2, 0, 64, def, kind
	dir := t.TempDir()
	straight, err := train.Run(context.Background(), cfg, tr, filepath.Join(dir, "a.safetensors"), false, train.Progress{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "b.safetensors")
	ctx, cancel := context.WithCancel(context.Background())
	_, err = train.Run(ctx, cfg, tr, out, false, train.Progress{Epoch: func(e train.EpochResult) {
		if e.Epoch == 1 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	// A fresh defense value, as a restarted process would build.
	cfg.Defense = mustNew(t, kind, advtrain.Params{Eps: 0.1, Steps: 3, Seed: 5, WarmupFraction: 0.5})
	resumed, err := train.Run(context.Background(), cfg, tr, out, true, train.Progress{})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range straight.Model.Params {
		if !slices.Equal(p.Data, resumed.Model.Params[i].Data) {
			t.Fatalf("parameter %s differs between the uninterrupted and the resumed run", p.Name)
		}
	}
	_, meta, _, err := model.LoadNative(out)
	if err != nil {
		t.Fatal(err)
	}
	if d := meta.Provenance.Defenses; len(d) != 1 || d[0].Name != kind || d[0].Params["eps"] != 0.1 || d[0].Params["attack"] != def.Record().Params["attack"] {
		t.Errorf("defenses recorded in the model: %+v", d)
	}
}
