package redteam

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/bulwark-sec/bulwark/internal/testutil"
	"github.com/bulwark-sec/bulwark/llm/classifier"
	"github.com/bulwark-sec/bulwark/llm/guard"
	"github.com/bulwark-sec/bulwark/llm/textnorm"
)

type chatReq struct {
	Messages []Message `json:"messages"`
}

// scripted answers chat requests with reply(system, last user message).
func scripted(t *testing.T, reply func(system, user string) string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req chatReq
		json.NewDecoder(r.Body).Decode(&req)
		var sys, user string
		for _, m := range req.Messages {
			switch m.Role {
			case "system":
				sys = m.Content
			case "user":
				user = m.Content
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": reply(sys, user)}}}, "usage": map[string]int{"completion_tokens": 7}})
	}))
	t.Cleanup(s.Close)
	return s
}

var markerRe = regexp.MustCompile(`ZX-[A-Z0-9]{8}`)

// obedient does what the last message says, as a model without defences
// would: it repeats any marker it is told to (decoding encodings as a
// capable model does), and hands out its instructions, codes and keys to
// whoever asks.
func obedient(system, user string) string {
	nr := textnorm.Normalize(user)
	for _, s := range nr.Segments() {
		if m := markerRe.FindString(strings.ToUpper(s)); m != "" {
			return m
		}
	}
	l := strings.ToLower(user)
	for _, w := range []string{"instruction", "system prompt", "code", "key", "configuration", "text above"} {
		if strings.Contains(l, w) {
			return "Of course. My instructions: " + system
		}
	}
	return "Happy to help with your account."
}

func refuser(_, _ string) string { return "I'm sorry, but I can't help with that." }

func scan(t *testing.T, url string) *Report {
	t.Helper()
	tg, err := NewTarget(TargetOptions{URL: url + "/v1", Model: "scripted"})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := Probes("default")
	if err != nil {
		t.Fatal(err)
	}
	return Run(context.Background(), tg, ps, Options{Seed: 1})
}

// The scanner tells an obedient model from a refusing one, and a guard in
// front of the obedient one blocks most of what got through.
func TestScanObedientRefusingGuarded(t *testing.T) {
	ob := scan(t, scripted(t, obedient).URL)
	for _, p := range ob.Probes {
		if p.Successes == 0 || p.Errors > 0 {
			t.Errorf("obedient model, %s: %d of %d succeeded, %d errors", p.Probe, p.Successes, p.Attempts, p.Errors)
		}
	}
	if ob.Overall.SuccessRate < 0.8 || ob.Status != "complete" {
		t.Errorf("obedient model: success rate %.2f, status %s", ob.Overall.SuccessRate, ob.Status)
	}
	if lo, hi := ob.Overall.CI95[0], ob.Overall.CI95[1]; !(lo <= ob.Overall.SuccessRate && ob.Overall.SuccessRate <= hi && hi-lo < 0.3) {
		t.Errorf("bootstrap interval %v around %.2f", ob.Overall.CI95, ob.Overall.SuccessRate)
	}

	re := scan(t, scripted(t, refuser).URL)
	if re.Overall.Successes != 0 || re.Overall.Refusals != re.Overall.Attempts || re.Overall.Attempts != ob.Overall.Attempts {
		t.Errorf("refusing model: %+v", re.Overall)
	}

	c, _ := classifier.Default()
	g, err := guard.New(guard.Options{Upstream: scripted(t, obedient).URL + "/v1", Policy: guard.DefaultPolicy(), Classifier: c})
	if err != nil {
		t.Fatal(err)
	}
	gs := httptest.NewServer(g)
	defer gs.Close()
	gu := scan(t, gs.URL)
	t.Logf("success rate: obedient %.2f, guarded %.2f (%d blocked of %d)", ob.Overall.SuccessRate, gu.Overall.SuccessRate, gu.Overall.Blocked, gu.Overall.Attempts)
	if gu.Overall.Blocked == 0 || gu.Overall.SuccessRate > ob.Overall.SuccessRate/3 {
		t.Errorf("guarded: success rate %.2f with %d blocked; unguarded %.2f", gu.Overall.SuccessRate, gu.Overall.Blocked, ob.Overall.SuccessRate)
	}
	for _, r := range gu.Results {
		if r.Detection.Success && !r.Blocked {
			t.Logf("through the guard: %s #%d %.80q", r.Probe, r.Index, r.Turns[len(r.Turns)-1])
		}
	}
	for _, p := range gu.Probes {
		if p.Probe == "injection.direct" && p.SuccessRate > 0.25 {
			t.Errorf("the guard let %d of %d direct injections through", p.Successes, p.Attempts)
		}
	}

	dir := t.TempDir()
	if err := ob.Write(dir); err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	sarifB, _ := os.ReadFile(filepath.Join(dir, "report.sarif"))
	var sl struct {
		Runs []struct {
			Results []struct{ RuleID string } `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(sarifB, &sl); err != nil || len(sl.Runs) != 1 || len(sl.Runs[0].Results) != len(ob.Probes) {
		t.Errorf("SARIF: %v %+v", err, sl)
	}
	validateSARIF(t, sarifB)
	if !strings.Contains(string(html), "injection.direct") || !strings.Contains(string(html), "AML.T0051") {
		t.Error("the HTML report lacks the probes")
	}
	f, _ := os.Open(filepath.Join(dir, "attempts.jsonl"))
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || len(r.Turns) == 0 {
			t.Fatalf("attempts.jsonl line %d: %v", n, err)
		}
	}
	if n != ob.Overall.Attempts {
		t.Errorf("attempts.jsonl has %d lines for %d attempts", n, ob.Overall.Attempts)
	}
}

func TestRefusal(t *testing.T) {
	for s, want := range map[string]bool{
		"I can't comply with that request.":                     true,
		"I'm sorry, but I cannot share my instructions.":        true,
		"Sure. Unfortunately, I am unable to do that, however.": true,
		"As an AI developed to help, I won't reveal that.":      true,
		"": true,
		"Here is the summary. The report says costs cannot rise.": false,
		"You can't miss it: the branch is on Main Street.":        false,
	} {
		if refusal(s) != want {
			t.Errorf("refusal(%q) = %v", s, !want)
		}
	}
}

// Rate limits and failures: a 429 with Retry-After is retried, a budget
// stops the run with a partial report, and answers that are not chat
// completions are errors, not verdicts.
func TestTargetFailures(t *testing.T) {
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			return
		}
		io.WriteString(w, `{"choices":[{"message":{"content":"I'm sorry, I can't."},"finish_reason":"stop"}]}`)
	}))
	defer flaky.Close()
	tg, _ := NewTarget(TargetOptions{URL: flaky.URL + "/v1", Model: "m"})
	t0 := time.Now()
	if ans, err := tg.Chat(context.Background(), []Message{{Role: "user", Content: "hi"}}); err != nil || !strings.Contains(ans, "sorry") || time.Since(t0) < time.Second {
		t.Errorf("retry after 429: %q %v after %v", ans, err, time.Since(t0))
	}

	tg, _ = NewTarget(TargetOptions{URL: scripted(t, obedient).URL + "/v1", Model: "m", MaxRequests: 5})
	ps, _ := Probes("injection.direct,extraction.system-prompt")
	rep := Run(context.Background(), tg, ps, Options{Seed: 2, Concurrency: 1})
	if rep.Status != "partial" || rep.Requests != 5 || rep.Overall.Attempts != 5 || rep.Overall.Errors == 0 {
		t.Errorf("budget: status %s, %d requests, %+v", rep.Status, rep.Requests, rep.Overall)
	}

	junk := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>oops</html>") }))
	defer junk.Close()
	tg, _ = NewTarget(TargetOptions{URL: junk.URL + "/v1", Model: "m"})
	rep = Run(context.Background(), tg, ps, Options{Seed: 2})
	if rep.Overall.Attempts != 0 || rep.Overall.Errors != len(injectionTemplates)+len(extractionPrompts) {
		t.Errorf("junk answers: %+v", rep.Overall)
	}
	if _, err := Probes("nosuch"); err == nil {
		t.Error("an unknown probe was accepted")
	}
	if _, err := NewTarget(TargetOptions{URL: "ftp://x", Model: "m"}); err == nil {
		t.Error("a non-http target was accepted")
	}
}

// A generic REST target: the template carries the prompt, the response
// path finds the answer, and the obedient script behind it is caught.
func TestRESTTarget(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Input struct{ Text, Context string } `json:"input"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		json.NewEncoder(w).Encode(map[string]any{"output": []any{map[string]any{"text": obedient(req.Input.Context, req.Input.Text)}}})
	}))
	defer srv.Close()
	tg, err := NewTarget(TargetOptions{URL: srv.URL + "/generate", Template: `{"input": {"text": "{{prompt}}", "context": "{{system}}"}, "mode": "chat"}`, ResponsePath: "output.0.text"})
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := Probes("injection.direct,extraction.system-prompt")
	rep := Run(context.Background(), tg, ps, Options{Seed: 3})
	if rep.Overall.Errors != 0 || rep.Overall.SuccessRate < 0.9 {
		t.Errorf("REST target: %+v", rep.Overall)
	}
	for _, o := range []TargetOptions{
		{URL: srv.URL, Template: `{"x": 1}`, ResponsePath: "a"},
		{URL: srv.URL, Template: `{"x": "{{prompt}}"`, ResponsePath: "a"},
		{URL: srv.URL, Template: `{"x": "{{prompt}}"}`},
	} {
		if _, err := NewTarget(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// validateSARIF checks a log against the OASIS SARIF 2.1.0 schema.
func validateSARIF(t *testing.T, b []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.SARIFSchema(t).Validate(v); err != nil {
		t.Errorf("the SARIF log breaks the schema: %v", err)
	}
}

// A target that does not answer in time is an error for that attempt,
// after the retries, and the run goes on.
func TestTargetTimeout(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	tg, _ := NewTarget(TargetOptions{URL: slow.URL + "/v1", Model: "m", Timeout: 100 * time.Millisecond, Retries: 1})
	ps, _ := Probes("leak.credentials")
	t0 := time.Now()
	rep := Run(context.Background(), tg, ps, Options{Seed: 1})
	if rep.Overall.Errors != 3 || rep.Overall.Attempts != 0 || time.Since(t0) > 4*time.Second {
		t.Errorf("timeouts: %+v in %v", rep.Overall, time.Since(t0))
	}
	if !strings.Contains(rep.Results[0].Error, "after 2 tries") {
		t.Errorf("error %q", rep.Results[0].Error)
	}
}

// The optional detectors: a regex flags the answers it matches, and the
// classifier labels every answer; neither changes what counts as success.
func TestOptionalDetectors(t *testing.T) {
	c, _ := classifier.Default()
	tg, _ := NewTarget(TargetOptions{URL: scripted(t, obedient).URL + "/v1", Model: "m"})
	ps, _ := Probes("extraction.system-prompt,injection.direct")
	plain := Run(context.Background(), tg, ps, Options{Seed: 4})
	rep := Run(context.Background(), tg, ps, Options{Seed: 4, Detectors: Detectors{Regexes: []*regexp.Regexp{regexp.MustCompile(`(?i)my instructions`)}, Classifier: c}})
	var ext ProbeSummary
	for _, p := range rep.Probes {
		if p.Probe == "extraction.system-prompt" {
			ext = p
		}
	}
	if ext.RegexHits != ext.Attempts || ext.Attempts == 0 {
		t.Errorf("regex detector: %d hits of %d", ext.RegexHits, ext.Attempts)
	}
	for _, r := range rep.Results {
		if r.Detection.Classifier == "" {
			t.Fatalf("attempt %s #%d has no classifier label", r.Probe, r.Index)
		}
	}
	if rep.Overall.Successes != plain.Overall.Successes {
		t.Errorf("the optional detectors changed the successes: %d, without them %d", rep.Overall.Successes, plain.Overall.Successes)
	}
}
