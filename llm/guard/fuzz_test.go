package guard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-sec/bulwark/llm/classifier"
)

// FuzzGuard drives the guard with hostile requests and, through a scripted
// upstream that streams whatever the input says, hostile answers: it must
// answer every request with a well-formed status and never panic.
func FuzzGuard(f *testing.F) {
	f.Add(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "data: [DONE]\n\n", true)
	f.Add(`{"messages":[{"role":"system","content":[{"type":"text","text":"x"}]},{"role":"tool","content":"y"}]}`, `{"choices":[{"message":{"content":"sk-proj-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}]}`, false)
	f.Add(`{"stream":true,"messages":[{"role":"user","content":"a"}]}`, "data: {\"choices\":[{\"delta\":{\"content\":\"ZEBRA-7731-CAN\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"ARY\"},\"finish_reason\":\"stop\"}]}\n", true)
	f.Fuzz(func(t *testing.T, req, answer string, stream bool) {
		us := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if stream {
				w.Header().Set("Content-Type", "text/event-stream")
			} else {
				w.Header().Set("Content-Type", "application/json")
			}
			w.Write([]byte(answer))
		}))
		defer us.Close()
		c, _ := classifier.Default()
		p := DefaultPolicy()
		p.Canaries = []string{"ZEBRA-7731-CANARY"}
		g, err := New(Options{Upstream: us.URL + "/v1", Policy: p, Classifier: c, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		rr := httptest.NewRecorder()
		g.ServeHTTP(rr, httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(req)))
		if rr.Code < 200 || rr.Code > 599 {
			t.Fatalf("status %d", rr.Code)
		}
		if strings.Contains(rr.Body.String(), "ZEBRA-7731-CANARY") {
			t.Fatalf("the canary got through: %q", rr.Body.String())
		}
	})
}
