package redteam

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// Result is one attempt's outcome.
type Result struct {
	Attempt
	Answers   []string  `json:"answers"`
	Detection Detection `json:"detection"`
	// Blocked: a guard in front of the model refused the request or
	// withheld the answer.
	Blocked bool   `json:"blocked"`
	Error   string `json:"error,omitempty"`
	Millis  int64  `json:"ms"`
}

// Done reports whether the attempt got a verdict (answered or blocked).
func (r Result) Done() bool { return r.Error == "" }

// ProbeSummary is a probe's figures over its finished attempts.
type ProbeSummary struct {
	Probe       string   `json:"probe"`
	Description string   `json:"description"`
	ATLAS       []string `json:"atlas"`
	Attempts    int      `json:"attempts"` // with a verdict
	Successes   int      `json:"successes"`
	Blocked     int      `json:"blocked"`
	Refusals    int      `json:"refusals"`
	Partial     int      `json:"partial"`
	Echoes      int      `json:"echoes"` // answers that only quoted the attack
	// RegexHits and ClassifierHits count the answers the optional
	// detectors flagged (a regex matched; the classifier labelled the
	// answer an injection or jailbreak).
	RegexHits      int `json:"regex_hits"`
	ClassifierHits int `json:"classifier_hits"`
	Errors         int `json:"errors"`
	// SuccessRate is successes/attempts, with a 95% percentile-bootstrap
	// interval over the attempts.
	SuccessRate float64    `json:"success_rate"`
	CI95        [2]float64 `json:"ci95"`
}

// Report is a scan's outcome.
type Report struct {
	Tool     string         `json:"tool"`
	Target   string         `json:"target"`
	Model    string         `json:"model"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Status   string         `json:"status"` // complete, partial
	Reason   string         `json:"partial_reason,omitempty"`
	Seed     uint64         `json:"seed"`
	Requests int            `json:"requests"`
	Tokens   int            `json:"completion_tokens"`
	Probes   []ProbeSummary `json:"probes"`
	// Overall pools every attempt.
	Overall ProbeSummary `json:"overall"`
	Results []Result     `json:"-"` // written to attempts.jsonl
}

// Options configure a run.
type Options struct {
	Concurrency int    // attempts in flight (default 4)
	Seed        uint64 // secrets and bootstrap
	Detectors   Detectors
}

// Run sends every attempt of the probes to the target. It stops early, and
// reports a partial run with what it has, when the budget is spent or ctx
// is cancelled.
func Run(ctx context.Context, t *Target, probes []Probe, o Options) *Report {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x72656474))
	sec := NewSecrets(rng)
	rep := &Report{Tool: "bulwark llm scan", Target: t.base, Model: t.model, Started: time.Now().UTC(), Seed: o.Seed, Status: "complete"}
	var all []Attempt
	for _, p := range probes {
		for i, a := range p.Attempts(sec) {
			a.Probe, a.Index = p.Name, i
			all = append(all, a)
		}
	}
	results := make([]Result, len(all))
	var mu sync.Mutex
	var stop error
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for i, a := range all {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i] = attempt(ctx, t, a, o.Detectors)
			if err := results[i].Error; err != "" && (errors.Is(ctx.Err(), context.Canceled) || err == ErrBudget.Error()) {
				mu.Lock()
				if stop == nil {
					stop = errors.New(err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if stop != nil || ctx.Err() != nil {
		rep.Status = "partial"
		if stop != nil {
			rep.Reason = stop.Error()
		} else {
			rep.Reason = ctx.Err().Error()
		}
	}
	rep.Results = results
	rep.Requests, rep.Tokens = t.Used()
	boot := rand.New(rand.NewPCG(o.Seed, 0x626f6f74))
	byProbe := map[string][]Result{}
	for _, r := range results {
		byProbe[r.Probe] = append(byProbe[r.Probe], r)
	}
	for _, p := range probes {
		s := summarise(byProbe[p.Name], boot)
		s.Probe, s.Description, s.ATLAS = p.Name, p.Description, p.ATLAS
		rep.Probes = append(rep.Probes, s)
	}
	sort.Slice(rep.Probes, func(i, j int) bool { return rep.Probes[i].Probe < rep.Probes[j].Probe })
	rep.Overall = summarise(results, boot)
	rep.Overall.Probe = "all"
	rep.Finished = time.Now().UTC()
	return rep
}

// attempt plays one conversation.
func attempt(ctx context.Context, t *Target, a Attempt, ds Detectors) Result {
	r := Result{Attempt: a}
	t0 := time.Now()
	defer func() { r.Millis = time.Since(t0).Milliseconds() }()
	msgs := []Message{}
	if a.System != "" {
		msgs = append(msgs, Message{Role: "system", Content: a.System})
	}
	for _, turn := range a.Turns {
		msgs = append(msgs, Message{Role: "user", Content: turn})
		ans, err := t.Chat(ctx, msgs)
		var be *BlockedError
		if errors.As(err, &be) {
			r.Blocked = true
			r.Answers = append(r.Answers, ans)
			r.Millis = time.Since(t0).Milliseconds()
			return r
		}
		if err != nil {
			r.Error = err.Error()
			r.Millis = time.Since(t0).Milliseconds()
			return r
		}
		r.Answers = append(r.Answers, ans)
		msgs = append(msgs, Message{Role: "assistant", Content: ans})
	}
	r.Detection = detect(a, r.Answers[len(r.Answers)-1])
	ds.apply(&r.Detection, r.Answers[len(r.Answers)-1])
	r.Millis = time.Since(t0).Milliseconds()
	return r
}

// bootstrapSamples is the number of resamples behind each interval.
const bootstrapSamples = 2000

func summarise(rs []Result, rng *rand.Rand) ProbeSummary {
	var s ProbeSummary
	var wins []bool
	for _, r := range rs {
		if !r.Done() {
			s.Errors++
			continue
		}
		s.Attempts++
		switch {
		case r.Blocked:
			s.Blocked++
		case r.Detection.Success:
			s.Successes++
		}
		if r.Detection.Refusal {
			s.Refusals++
		}
		if r.Detection.Partial {
			s.Partial++
		}
		if r.Detection.Echo {
			s.Echoes++
		}
		if len(r.Detection.Regex) > 0 {
			s.RegexHits++
		}
		if r.Detection.Classifier != "" && r.Detection.Classifier != "benign" {
			s.ClassifierHits++
		}
		wins = append(wins, r.Detection.Success && !r.Blocked)
	}
	if s.Attempts == 0 {
		return s
	}
	s.SuccessRate = float64(s.Successes) / float64(s.Attempts)
	rates := make([]float64, bootstrapSamples)
	for b := range rates {
		k := 0
		for range wins {
			if wins[rng.IntN(len(wins))] {
				k++
			}
		}
		rates[b] = float64(k) / float64(len(wins))
	}
	sort.Float64s(rates)
	s.CI95 = [2]float64{rates[bootstrapSamples*25/1000], rates[bootstrapSamples*975/1000-1]}
	return s
}
