package redteam

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzAnswer feeds the target client arbitrary answers: it returns text or
// an error, never panics, and a text it returns came from a choice.
func FuzzAnswer(f *testing.F) {
	f.Add([]byte(`{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}`))
	f.Add([]byte(`{"choices":[{"message":{"content":null}}]}`))
	f.Add([]byte(`{"choices":[{"message":{"content":"x"},"finish_reason":"content_filter"}],"usage":{"completion_tokens":-5}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(b) }))
		defer s.Close()
		tg, err := NewTarget(TargetOptions{URL: s.URL, Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		ans, err := tg.Chat(context.Background(), []Message{{Role: "user", Content: "hi"}})
		if err == nil && len(ans) > len(b) {
			t.Fatalf("answer of %d bytes from %d", len(ans), len(b))
		}
		detect(Attempt{Marker: "ZX-AAAAAAAA", Turns: []string{"hi"}}, ans)
	})
}
