package guard

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-sec/bulwark/llm/classifier"
)

// BenchmarkOverhead measures a chat request of about 600 characters
// straight to a scripted upstream and through the guard (default policy,
// on loopback, keep-alive): the difference is the latency the guard adds.
func BenchmarkOverhead(b *testing.B) {
	up := &upstream{reply: func(_, user string) string {
		return "Here is a summary of your text: " + user[:200] + " I hope this helps, let me know if you need anything else."
	}}
	us := httptest.NewServer(up)
	defer us.Close()
	c, err := classifier.Default()
	if err != nil {
		b.Fatal(err)
	}
	g, _ := New(Options{Upstream: us.URL + "/v1", Policy: DefaultPolicy(), Classifier: c})
	gs := httptest.NewServer(g)
	defer gs.Close()
	user := strings.Repeat("Our quarterly results improved in every region, with sales up and costs down. ", 8)
	body, _ := json.Marshal(map[string]any{"model": "m", "messages": []any{
		map[string]any{"role": "system", "content": "You are a helpful assistant for the finance team."},
		map[string]any{"role": "user", "content": "Summarise this: " + user},
	}})
	for _, t := range []struct{ name, url string }{{"direct", us.URL}, {"guard", gs.URL}} {
		b.Run(t.name, func(b *testing.B) {
			for b.Loop() {
				resp, err := http.Post(t.url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("%v %v", resp, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	up.mu.Lock()
	up.requests = nil // keep the benchmark's memory flat
	up.mu.Unlock()
}
