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

// Target is an OpenAI-compatible chat-completions endpoint.
type Target struct {
	base, model, key string
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
}

// NewTarget checks the options.
func NewTarget(o TargetOptions) (*Target, error) {
	u, err := url.Parse(strings.TrimSuffix(o.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("target %q: want an http(s) URL such as http://127.0.0.1:8000/v1", o.URL)
	}
	if o.Model == "" {
		return nil, errors.New("the model name is required")
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Retries == 0 {
		o.Retries = 3
	}
	return &Target{base: u.String(), model: o.Model, key: o.APIKey, client: &http.Client{Timeout: o.Timeout},
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
	body, _ := json.Marshal(map[string]any{"model": t.model, "messages": msgs, "temperature": 0, "max_tokens": 512})
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.base+"/chat/completions", bytes.NewReader(body))
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
