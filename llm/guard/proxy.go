package guard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bulwark-sec/bulwark/llm/classifier"
)

// Limits on what the guard reads.
const (
	MaxRequestBytes  = 8 << 20  // a chat request
	MaxResponseBytes = 32 << 20 // an upstream answer, streamed or not
	maxSSELine       = 4 << 20
	// holdBack is how much streamed text the guard keeps back before
	// passing it on, so that a secret or canary split across chunks is
	// still whole when it is scanned.
	holdBack = 256
)

// Guard is the proxy. Build it with New.
type Guard struct {
	upstream   *url.URL
	policy     Policy
	classifier *classifier.Classifier
	client     *http.Client
	// upstreamKey, when set, replaces the client's Authorization header
	// towards the upstream.
	upstreamKey string
	logMu       sync.Mutex
	log         io.Writer
}

// Options configure a Guard.
type Options struct {
	Upstream    string // base URL of the upstream API, e.g. http://127.0.0.1:8000/v1
	Policy      Policy
	Classifier  *classifier.Classifier
	UpstreamKey string
	Timeout     time.Duration // per upstream request (default 5 minutes)
	Log         io.Writer     // one JSON line per request; nil for none
}

// New checks the options and returns a Guard.
func New(o Options) (*Guard, error) {
	u, err := url.Parse(strings.TrimSuffix(o.Upstream, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("upstream %q: want an http(s) URL such as http://127.0.0.1:8000/v1", o.Upstream)
	}
	if err := o.Policy.Validate(); err != nil {
		return nil, err
	}
	if o.Classifier == nil {
		return nil, errors.New("no classifier")
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	return &Guard{upstream: u, policy: o.Policy, classifier: o.Classifier, upstreamKey: o.UpstreamKey,
		client: &http.Client{Timeout: o.Timeout}, log: log}, nil
}

func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := logRecord{Time: start.UTC().Format(time.RFC3339Nano), Method: r.Method, Path: r.URL.Path, Decision: "allow"}
	defer func() {
		rec.Micros = time.Since(start).Microseconds()
		g.writeLog(rec)
	}()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions":
		g.chat(w, r, &rec)
	case r.Method == http.MethodGet && (r.URL.Path == "/v1/models" || strings.HasPrefix(r.URL.Path, "/v1/models/")):
		g.forward(w, r, strings.TrimPrefix(r.URL.Path, "/v1"), nil, &rec)
	default:
		rec.Decision = "not-found"
		apiError(w, http.StatusNotFound, "not_found", fmt.Sprintf("%s %s is not served by the guard (it serves POST /v1/chat/completions and GET /v1/models)", r.Method, r.URL.Path), nil)
	}
}

// logRecord is one line of the guard's log. It never holds message
// content or credentials: only what was found, where, and what was done.
type logRecord struct {
	Time     string   `json:"time"`
	Method   string   `json:"method"`
	Path     string   `json:"path"`
	Decision string   `json:"decision"` // allow, block-input, block-output, redact, flag, error, not-found
	Findings []string `json:"findings,omitempty"`
	Status   int      `json:"upstream_status,omitempty"`
	Error    string   `json:"error,omitempty"`
	Micros   int64    `json:"latency_us"`
}

func (g *Guard) writeLog(rec logRecord) {
	b, _ := json.Marshal(rec)
	g.logMu.Lock()
	defer g.logMu.Unlock()
	g.log.Write(append(b, '\n'))
}

// apiError writes an error in the OpenAI API's shape.
func apiError(w http.ResponseWriter, status int, code, msg string, fs []Finding) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	e := map[string]any{"message": msg, "type": "bulwark_guard", "code": code}
	if len(fs) > 0 {
		e["findings"] = fs
	}
	json.NewEncoder(w).Encode(map[string]any{"error": e})
}

// message is a chat message with its texts located: content is a string
// or a list of parts, of which the text parts are scanned.
type message struct {
	raw  map[string]json.RawMessage
	role string
	// texts are the message's texts; parts is nil for string content, or
	// the parts with texts[i] at index partIdx[i].
	texts   []string
	parts   []map[string]json.RawMessage
	partIdx []int
}

func parseMessages(raw json.RawMessage) ([]*message, error) {
	var ms []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ms); err != nil {
		return nil, fmt.Errorf("messages: %w", err)
	}
	var out []*message
	for i, m := range ms {
		msg := &message{raw: m}
		if err := json.Unmarshal(m["role"], &msg.role); err != nil {
			return nil, fmt.Errorf("messages[%d]: role: %w", i, err)
		}
		c := m["content"]
		var s string
		switch {
		case len(c) == 0 || string(c) == "null":
		case json.Unmarshal(c, &s) == nil:
			msg.texts = []string{s}
		default:
			if err := json.Unmarshal(c, &msg.parts); err != nil {
				return nil, fmt.Errorf("messages[%d]: content is neither a string nor a list of parts", i)
			}
			for j, p := range msg.parts {
				var typ, text string
				json.Unmarshal(p["type"], &typ)
				if typ == "text" {
					if err := json.Unmarshal(p["text"], &text); err != nil {
						return nil, fmt.Errorf("messages[%d].content[%d]: text: %w", i, j, err)
					}
					msg.texts = append(msg.texts, text)
					msg.partIdx = append(msg.partIdx, j)
				}
			}
		}
		out = append(out, msg)
	}
	return out, nil
}

// setText replaces text i of the message.
func (m *message) setText(i int, s string) {
	b, _ := json.Marshal(s)
	if m.parts == nil {
		m.raw["content"] = b
		return
	}
	m.parts[m.partIdx[i]]["text"] = b
	pb, _ := json.Marshal(m.parts)
	m.raw["content"] = pb
}

// scanInput runs the input scanners on one text; ctx is the classifier's
// context for it.
func (g *Guard) scanInput(s string, ctx classifier.Context) []Finding {
	var fs []Finding
	p := g.policy.Input
	if p.Injection != Off {
		fs = append(fs, scanInjection(g.classifier, s, ctx)...)
	}
	if p.Invisible != Off {
		fs = append(fs, scanInvisible(s)...)
	}
	if p.Secrets != Off {
		fs = append(fs, scanSecrets(s)...)
	}
	if p.PII != Off {
		fs = append(fs, scanPII(s)...)
	}
	return fs
}

// scanOutput runs the output scanners on an answer.
func (g *Guard) scanOutput(s string, systems []string) []Finding {
	var fs []Finding
	p := g.policy.Output
	if p.Canary != Off {
		fs = append(fs, scanCanaries(s, g.policy.Canaries)...)
	}
	if p.Leak != Off {
		fs = append(fs, scanLeak(s, systems)...)
	}
	if p.Secrets != Off {
		fs = append(fs, scanSecrets(s)...)
	}
	if p.PII != Off {
		fs = append(fs, scanPII(s)...)
	}
	return fs
}

// decide splits findings by action and redacts what is to be redacted.
func (g *Guard) decide(output bool, s string, fs []Finding) Verdict {
	v := Verdict{Text: s}
	var red []Finding
	for _, f := range fs {
		switch g.policy.actionOf(output, f.Scanner) {
		case Block:
			v.Blocked = append(v.Blocked, f)
		case Redact:
			red = append(red, f)
		case Flag:
			v.Flagged = append(v.Flagged, f.Scanner+":"+f.Kind)
		}
	}
	v.Text = redact(s, red)
	return v
}

func (g *Guard) chat(w http.ResponseWriter, r *http.Request, rec *logRecord) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBytes+1))
	if err != nil {
		rec.Decision, rec.Error = "error", err.Error()
		apiError(w, http.StatusBadRequest, "invalid_request", "reading the request: "+err.Error(), nil)
		return
	}
	if len(body) > MaxRequestBytes {
		rec.Decision = "error"
		apiError(w, http.StatusRequestEntityTooLarge, "request_too_large", fmt.Sprintf("the request is larger than %d bytes", MaxRequestBytes), nil)
		return
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		rec.Decision, rec.Error = "error", "request is not a JSON object"
		apiError(w, http.StatusBadRequest, "invalid_request", "the request is not a JSON object: "+err.Error(), nil)
		return
	}
	msgs, err := parseMessages(req["messages"])
	if err != nil {
		rec.Decision, rec.Error = "error", err.Error()
		apiError(w, http.StatusBadRequest, "invalid_request", err.Error(), nil)
		return
	}
	var stream bool
	json.Unmarshal(req["stream"], &stream)
	var n int
	if json.Unmarshal(req["n"], &n) == nil && n > 1 && stream {
		rec.Decision = "error"
		apiError(w, http.StatusBadRequest, "unsupported", "the guard streams one choice at a time; use n = 1 with stream", nil)
		return
	}

	// Input: users' messages are prompts; tool and function results are
	// documents; system and developer messages are the application's own
	// and assistant messages the model's, and neither is screened.
	// The size limit comes first: scanning is linear in the text, and a
	// request refused for its size should not cost a scan.
	tokens := 0
	for _, m := range msgs {
		for _, t := range m.texts {
			tokens += approxTokens(t)
		}
	}
	if limit := g.policy.Input.MaxTokens; limit > 0 && tokens > limit {
		f := Finding{Scanner: ScanTokens, Kind: "too-many-tokens", Detail: fmt.Sprintf("about %d tokens, more than %d", tokens, limit)}
		rec.Decision, rec.Findings = "block-input", kinds([]Finding{f})
		apiError(w, http.StatusBadRequest, "blocked", "request blocked by the bulwark guard: "+ScanTokens+":"+f.Kind, []Finding{f})
		return
	}
	var all, blocked []Finding
	var flagged []string
	var systems []string
	changed := false
	for _, m := range msgs {
		for i, t := range m.texts {
			var fs []Finding
			switch m.role {
			case "user":
				fs = g.scanInput(t, classifier.Prompt)
			case "tool", "function":
				fs = g.scanInput(t, classifier.Document)
			case "system", "developer":
				// The application's own words: not screened (a key it
				// keeps there would block every request), but remembered,
				// so that an answer reciting them is caught.
				systems = append(systems, t)
				continue
			default:
				continue
			}
			v := g.decide(false, t, fs)
			all, blocked, flagged = append(all, fs...), append(blocked, v.Blocked...), append(flagged, v.Flagged...)
			if v.Text != t {
				m.setText(i, v.Text)
				changed = true
			}
		}
	}
	rec.Findings = kinds(all)
	if len(blocked) > 0 {
		rec.Decision = "block-input"
		apiError(w, http.StatusBadRequest, "blocked", "request blocked by the bulwark guard: "+strings.Join(kinds(blocked), ", "), blocked)
		return
	}
	if changed {
		rec.Decision = "redact"
		var raws []map[string]json.RawMessage
		for _, m := range msgs {
			raws = append(raws, m.raw)
		}
		req["messages"], _ = json.Marshal(raws)
		body, _ = json.Marshal(req)
	} else if len(flagged) > 0 {
		rec.Decision = "flag"
	}
	if len(flagged) > 0 {
		w.Header().Set("X-Bulwark-Flags", strings.Join(uniq(flagged), ","))
	}
	g.forward(w, r, "/chat/completions", body, rec, func(resp *http.Response) {
		if stream && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			g.relayStream(w, resp, systems, rec)
		} else {
			g.relayAnswer(w, resp, systems, rec)
		}
	})
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// forward sends the request upstream (body nil: the client's, for GET) and
// relays the answer: through relay when the upstream answered 200 and
// relay is given, verbatim (bounded) otherwise.
func (g *Guard) forward(w http.ResponseWriter, r *http.Request, path string, body []byte, rec *logRecord, relay ...func(*http.Response)) {
	u := *g.upstream
	u.Path += path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), rd)
	if err != nil {
		rec.Decision, rec.Error = "error", err.Error()
		apiError(w, http.StatusInternalServerError, "internal", err.Error(), nil)
		return
	}
	for _, h := range []string{"Content-Type", "Accept", "Authorization", "OpenAI-Organization", "OpenAI-Project"} {
		if v := r.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	if g.upstreamKey != "" {
		out.Header.Set("Authorization", "Bearer "+g.upstreamKey)
	}
	resp, err := g.client.Do(out)
	if err != nil {
		rec.Decision, rec.Error = "error", "upstream: "+err.Error()
		apiError(w, http.StatusBadGateway, "upstream_unavailable", "the upstream did not answer: "+err.Error(), nil)
		return
	}
	defer resp.Body.Close()
	rec.Status = resp.StatusCode
	if resp.StatusCode == http.StatusOK && len(relay) > 0 {
		relay[0](resp)
		return
	}
	// Errors (429 with Retry-After, 5xx) pass through as the upstream sent
	// them, up to the size limit.
	for _, h := range []string{"Content-Type", "Retry-After"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, MaxResponseBytes))
}

// relayAnswer scans a complete chat answer and relays it, with what the
// output policy blocks withheld (finish_reason "content_filter", as the
// OpenAI API marks filtered answers) and what it redacts redacted.
func (g *Guard) relayAnswer(w http.ResponseWriter, resp *http.Response, systems []string, rec *logRecord) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil || len(b) > MaxResponseBytes {
		rec.Decision, rec.Error = "error", "upstream answer unreadable or too large"
		apiError(w, http.StatusBadGateway, "upstream_bad_answer", fmt.Sprintf("the upstream answer could not be read or is larger than %d bytes", MaxResponseBytes), nil)
		return
	}
	var ans map[string]json.RawMessage
	var choices []map[string]json.RawMessage
	if json.Unmarshal(b, &ans) != nil || json.Unmarshal(ans["choices"], &choices) != nil {
		rec.Decision, rec.Error = "error", "upstream answer is not a chat completion"
		apiError(w, http.StatusBadGateway, "upstream_bad_answer", "the upstream answer is not a chat completion object", nil)
		return
	}
	var found []Finding
	var flagged []string
	for _, c := range choices {
		var msg map[string]json.RawMessage
		var content string
		if json.Unmarshal(c["message"], &msg) != nil || json.Unmarshal(msg["content"], &content) != nil {
			continue
		}
		fs := g.scanOutput(content, systems)
		v := g.decide(true, content, fs)
		found, flagged = append(found, fs...), append(flagged, v.Flagged...)
		if len(v.Blocked) > 0 {
			v.Text = "[withheld by the bulwark guard: " + strings.Join(kinds(v.Blocked), ", ") + "]"
			c["finish_reason"] = json.RawMessage(`"content_filter"`)
			rec.Decision = "block-output"
		} else if v.Text != content && rec.Decision == "allow" {
			rec.Decision = "redact"
		}
		msg["content"], _ = json.Marshal(v.Text)
		c["message"], _ = json.Marshal(msg)
	}
	rec.Findings = append(rec.Findings, kinds(found)...)
	if len(flagged) > 0 {
		w.Header().Add("X-Bulwark-Flags", strings.Join(uniq(flagged), ","))
		if rec.Decision == "allow" {
			rec.Decision = "flag"
		}
	}
	ans["choices"], _ = json.Marshal(choices)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(ans)
}

// relayStream relays a server-sent-event stream of chat chunks. The text
// is scanned as it grows; the last holdBack bytes are kept back until more
// arrives so that what is scanned is whole, what is to be redacted is
// redacted before it is sent, and when something is to be blocked the
// stream ends there with finish_reason "content_filter".
func (g *Guard) relayStream(w http.ResponseWriter, resp *http.Response, systems []string, rec *logRecord) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	send := func(chunk map[string]json.RawMessage) {
		b, _ := json.Marshal(chunk)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
	}
	var full strings.Builder // everything the upstream said
	sent := 0                // bytes of full already passed on
	var template map[string]json.RawMessage
	// textChunk makes a chunk like the upstream's first, carrying text.
	textChunk := func(text string, finish json.RawMessage) map[string]json.RawMessage {
		c := map[string]json.RawMessage{}
		for k, v := range template {
			c[k] = v
		}
		delta, _ := json.Marshal(map[string]string{"content": text})
		if finish == nil {
			finish = json.RawMessage("null")
		}
		ch, _ := json.Marshal([]map[string]json.RawMessage{{"index": json.RawMessage("0"), "delta": delta, "finish_reason": finish}})
		c["choices"] = ch
		return c
	}
	var flagged []string
	// step scans everything received so far and passes on what is safe:
	// all of it when final, else all but the last holdBack bytes. It
	// reports whether the stream was ended because something was blocked.
	scanned := 0 // len(full) at the last scan
	step := func(final bool) (stop bool) {
		s := full.String()
		scanned = len(s)
		fs := g.scanOutput(s, systems)
		v := g.decide(true, s, fs)
		rec.Findings = kinds(fs)
		flagged = v.Flagged
		if len(v.Blocked) > 0 {
			rec.Decision = "block-output"
			send(textChunk("\n[withheld by the bulwark guard: "+strings.Join(kinds(v.Blocked), ", ")+"]", json.RawMessage(`"content_filter"`)))
			fmt.Fprint(w, "data: [DONE]\n\n")
			return true
		}
		upto := len(s)
		if !final {
			upto = max(sent, len(s)-holdBack)
			for upto > sent && !utf8.RuneStart(s[upto]) {
				upto--
			}
		}
		// Never cut a redacted span in two: stop before it.
		var red []Finding
		for _, f := range fs {
			if f.End > f.Start && g.policy.actionOf(true, f.Scanner) == Redact {
				if f.Start < upto && f.End > upto {
					upto = max(sent, f.Start)
				}
				red = append(red, f)
			}
		}
		if upto > sent {
			var part []Finding
			for _, f := range red {
				// A span whose start went out before it was recognised
				// (only possible for one longer than the hold-back) has
				// its rest withheld.
				f.Start, f.End = max(f.Start, sent), min(f.End, upto)
				if f.End > f.Start {
					f.Start, f.End = f.Start-sent, f.End-sent
					part = append(part, f)
				}
			}
			out := redact(s[sent:upto], part)
			if out != s[sent:upto] && rec.Decision == "allow" {
				rec.Decision = "redact"
			}
			send(textChunk(out, nil))
			sent = upto
		}
		return false
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, MaxResponseBytes))
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue // comments, event names, blank separators
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			if step(true) {
				return
			}
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		var chunk map[string]json.RawMessage
		var choices []struct {
			Delta struct {
				Content *string `json:"content"`
			} `json:"delta"`
			FinishReason json.RawMessage `json:"finish_reason"`
		}
		if json.Unmarshal([]byte(data), &chunk) != nil || json.Unmarshal(chunk["choices"], &choices) != nil {
			rec.Decision, rec.Error = "error", "malformed stream chunk"
			send(map[string]json.RawMessage{"error": json.RawMessage(`{"message":"the upstream sent a malformed stream chunk","type":"bulwark_guard","code":"upstream_bad_answer"}`)})
			return
		}
		if template == nil {
			template = chunk
		}
		for _, c := range choices {
			if c.Delta.Content != nil {
				full.WriteString(*c.Delta.Content)
			}
		}
		if len(choices) > 0 && len(choices[0].FinishReason) > 0 && string(choices[0].FinishReason) != "null" {
			if step(true) {
				return
			}
			send(textChunk("", choices[0].FinishReason))
			continue
		}
		// Each scan reads the whole answer so far, so scanning after every
		// chunk would be quadratic in a long stream of small chunks: scan
		// once the new text is a sizeable share of what was scanned
		// (geometric steps keep the total linear-ish), which also batches
		// what is passed on.
		if full.Len()-scanned >= max(holdBack/2, scanned/8) {
			if step(false) {
				return
			}
		}
	}
	// The upstream ended without [DONE], or the stream broke: pass on what
	// is safe and say so.
	if !step(true) {
		msg := "the upstream stream ended without [DONE]"
		if err := sc.Err(); err != nil {
			msg = "the upstream stream broke: " + err.Error()
		}
		rec.Decision, rec.Error = "error", msg
		b, _ := json.Marshal(map[string]any{"error": map[string]string{"message": msg, "type": "bulwark_guard", "code": "upstream_bad_answer"}})
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	if len(flagged) > 0 && rec.Decision == "allow" {
		rec.Decision = "flag"
	}
}
