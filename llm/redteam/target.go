package redteam

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxAnswerBytes bounds one answer read from the target.
const MaxAnswerBytes = 4 << 20

// Target is an OpenAI-compatible chat-completions endpoint, or a generic
// REST endpoint described by a request template and a response path.
type Target struct {
	base, model, key string
	template         any      // parsed request template; nil for OpenAI
	respPath         []string // where the answer text is in the response
	client           *http.Client
	retries          int
	limiter          *limiter
	budget           *budget
}

// TargetOptions configure a Target.
type TargetOptions struct {
	URL     string // base URL, e.g. http://127.0.0.1:8000/v1
	Model   string
	APIKey  string
	Timeout time.Duration // per request (default 60 s)
	Retries int           // on 429, 5xx and network errors (default 3)
	// RPS limits requests per second (0: no limit).
	RPS float64
	// MaxRequests is the request budget (0: none); MaxTokens the budget of
	// completion tokens the target reports using (0: none).
	MaxRequests, MaxTokens int
	// Template makes the target a generic REST endpoint: URL is posted
	// this JSON, with every string value "{{prompt}}" replaced by the last
	// user message, "{{system}}" by the system prompt and "{{messages}}"
	// by the whole conversation (a list of role/content objects).
	// ResponsePath says where the answer is: dot-separated keys and list
	// indices, e.g. "output.text" or "choices.0.message.content".
	Template, ResponsePath string
}

// NewTarget checks the options.
func NewTarget(o TargetOptions) (*Target, error) {
	u, err := url.Parse(strings.TrimSuffix(o.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("target %q: want an http(s) URL such as http://127.0.0.1:8000/v1", o.URL)
	}
	var tmpl any
	var path []string
	if o.Template != "" {
		if err := json.Unmarshal([]byte(o.Template), &tmpl); err != nil {
			return nil, fmt.Errorf("request template: not JSON: %w", err)
		}
		if !strings.Contains(o.Template, "{{prompt}}") && !strings.Contains(o.Template, "{{messages}}") {
			return nil, errors.New(`request template: it has neither "{{prompt}}" nor "{{messages}}", so no probe would reach the target`)
		}
		if o.ResponsePath == "" {
			return nil, errors.New("a request template needs a response path")
		}
		path = strings.Split(o.ResponsePath, ".")
	} else if o.Model == "" {
		return nil, errors.New("the model name is required")
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Retries == 0 {
		o.Retries = 3
	}
	return &Target{base: u.String(), model: o.Model, key: o.APIKey, template: tmpl, respPath: path, client: &http.Client{Timeout: o.Timeout},
		retries: o.Retries, limiter: newLimiter(o.RPS), budget: &budget{maxReq: o.MaxRequests, maxTok: o.MaxTokens}}, nil
}

// ErrBudget is returned once the request or token budget is spent.
var ErrBudget = errors.New("budget spent")

// BlockedError is a refusal by a guard in front of the model (HTTP 400
// with an error body, or an answer withheld with finish_reason
// content_filter): the attack did not get through, and that is a result,
// not a failure.
type BlockedError struct{ Msg string }

func (e *BlockedError) Error() string { return "blocked: " + e.Msg }

// Chat sends messages and returns the answer's text.
func (t *Target) Chat(ctx context.Context, msgs []Message) (string, error) {
	var body []byte
	if t.template != nil {
		body, _ = json.Marshal(fill(t.template, msgs))
	} else {
		body, _ = json.Marshal(map[string]any{"model": t.model, "messages": msgs, "temperature": 0, "max_tokens": 512})
	}
	var last error
	for try := 0; try <= t.retries; try++ {
		if err := t.budget.take(); err != nil {
			return "", err
		}
		if err := t.limiter.wait(ctx); err != nil {
			return "", err
		}
		text, retryAfter, err := t.once(ctx, body)
		if err == nil {
			return text, nil
		}
		var be *BlockedError
		if errors.As(err, &be) || retryAfter < 0 {
			return "", err
		}
		last = err
		wait := time.Duration(1<<try) * 500 * time.Millisecond
		if retryAfter > 0 {
			wait = retryAfter
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(min(wait, 30*time.Second)):
		}
	}
	return "", fmt.Errorf("after %d tries: %w", t.retries+1, last)
}

// once makes one request. retryAfter < 0 means the error is final.
func (t *Target) once(ctx context.Context, body []byte) (string, time.Duration, error) {
	u := t.base + "/chat/completions"
	if t.template != nil {
		u = t.base
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return "", -1, err
	}
	req.Header.Set("Content-Type", "application/json")
	if t.key != "" {
		req.Header.Set("Authorization", "Bearer "+t.key)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", -1, ctx.Err()
		}
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		return "", 0, fmt.Errorf("reading the answer: %w", err)
	}
	if len(b) > MaxAnswerBytes {
		return "", -1, fmt.Errorf("the answer is larger than %d bytes", MaxAnswerBytes)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return "", time.Duration(ra) * time.Second, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
	case resp.StatusCode == http.StatusBadRequest && bytes.Contains(b, []byte(`"error"`)) && bytes.Contains(b, []byte("block")):
		return "", -1, &BlockedError{Msg: fmt.Sprintf("HTTP 400: %.200s", b)}
	case resp.StatusCode != http.StatusOK:
		return "", -1, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
	}
	if t.template != nil {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return "", -1, fmt.Errorf("the answer is not JSON: %.200s", b)
		}
		text, ok := walk(v, t.respPath)
		if !ok {
			return "", -1, fmt.Errorf("the answer has no string at %s: %.200s", strings.Join(t.respPath, "."), b)
		}
		return text, 0, nil
	}
	var ans struct {
		Choices []struct {
			Message struct {
				Content *string `json:"content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || len(ans.Choices) == 0 || ans.Choices[0].Message.Content == nil {
		return "", -1, fmt.Errorf("the answer is not a chat completion: %.200s", b)
	}
	t.budget.spend(ans.Usage.CompletionTokens)
	c := ans.Choices[0]
	if c.FinishReason == "content_filter" {
		return *c.Message.Content, -1, &BlockedError{Msg: "answer withheld (content_filter)"}
	}
	return *c.Message.Content, 0, nil
}

// limiter spaces requests at most rps per second apart.
type limiter struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time
}

func newLimiter(rps float64) *limiter {
	if rps <= 0 {
		return &limiter{}
	}
	return &limiter{every: time.Duration(float64(time.Second) / rps)}
}

func (l *limiter) wait(ctx context.Context) error {
	if l.every == 0 {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	at := l.next
	if at.Before(now) {
		at = now
	}
	l.next = at.Add(l.every)
	l.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(at)):
		return nil
	}
}

// budget counts requests and completion tokens.
type budget struct {
	mu             sync.Mutex
	maxReq, maxTok int
	req, tok       int
}

func (b *budget) take() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if (b.maxReq > 0 && b.req >= b.maxReq) || (b.maxTok > 0 && b.tok >= b.maxTok) {
		return ErrBudget
	}
	b.req++
	return nil
}

func (b *budget) spend(tokens int) {
	b.mu.Lock()
	b.tok += tokens
	b.mu.Unlock()
}

// Used returns the requests and tokens spent.
func (t *Target) Used() (requests, tokens int) {
	t.budget.mu.Lock()
	defer t.budget.mu.Unlock()
	return t.budget.req, t.budget.tok
}

// fill copies a request template with the placeholders replaced.
func fill(v any, msgs []Message) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = fill(e, msgs)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fill(e, msgs)
		}
		return out
	case string:
		var sys, last string
		for _, m := range msgs {
			switch m.Role {
			case "system":
				sys = m.Content
			case "user":
				last = m.Content
			}
		}
		switch x {
		case "{{messages}}":
			return msgs
		case "{{prompt}}":
			return last
		case "{{system}}":
			return sys
		}
		return strings.NewReplacer("{{prompt}}", last, "{{system}}", sys).Replace(x)
	}
	return v
}

// walk follows a path of keys and list indices to a string.
func walk(v any, path []string) (string, bool) {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return "", false
			}
			v = x[i]
		default:
			return "", false
		}
	}
	s, ok := v.(string)
	return s, ok
}
