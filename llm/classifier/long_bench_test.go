package classifier

import (
	"testing"

	"github.com/bulwark-sec/bulwark/internal/testutil"
	"github.com/bulwark-sec/bulwark/llm/corpus"
)

// BenchmarkClassifyLongest classifies the longest text of the data (a
// 13 KB attacker transcript), the case that sets the p99 latency.
func BenchmarkClassifyLongest(b *testing.B) {
	recs, err := corpus.Load(testutil.SharedPath(b, "data/llm"))
	if err != nil {
		b.Fatal(err)
	}
	var long string
	for _, r := range recs {
		if len(r.Text) > len(long) {
			long = r.Text
		}
	}
	c, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(long)))
	for b.Loop() {
		c.Classify(long)
	}
}
