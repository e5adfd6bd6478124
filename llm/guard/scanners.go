package guard

import (
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/bulwark-sec/bulwark/llm/classifier"
	"github.com/bulwark-sec/bulwark/llm/textnorm"
)

// A Finding is one thing a scanner found in a text. Start and End delimit
// it in bytes when it can be redacted (End > Start); findings about the
// whole text (an injection, a token limit) have no span.
type Finding struct {
	Scanner string  `json:"scanner"`
	Kind    string  `json:"kind"`
	Detail  string  `json:"detail,omitempty"`
	Score   float64 `json:"score,omitempty"`
	Start   int     `json:"-"`
	End     int     `json:"-"`
}

// scanner names, as the policy spells them.
const (
	ScanInjection = "injection"
	ScanInvisible = "invisible_text"
	ScanSecrets   = "secrets"
	ScanPII       = "pii"
	ScanTokens    = "token_limit"
	ScanCanary    = "canary"
	ScanLeak      = "system_prompt_leak"
)

// secretPatterns are credential formats whose shape alone identifies them
// (their issuers chose prefixes for this purpose). Our own list.
//
// lit holds substrings of which a match must contain one: checking them
// first spares the regexp machine almost every text (it was most of the
// guard's time).
var secretPatterns = []struct {
	kind string
	lit  []string
	re   *regexp.Regexp
}{
	{"private-key", []string{"PRIVATE KEY-----"}, regexp.MustCompile(`-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----)?`)},
	{"aws-access-key-id", []string{"AKIA", "ASIA"}, regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{"github-token", []string{"_"}, regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b`)},
	{"openai-api-key", []string{"sk-"}, regexp.MustCompile(`\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{32,}\b`)},
	{"slack-token", []string{"xox"}, regexp.MustCompile(`\bxox[abprs]-[A-Za-z0-9-]{10,}\b`)},
	{"google-api-key", []string{"AIza"}, regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}\b`)},
	{"stripe-secret-key", []string{"k_live_"}, regexp.MustCompile(`\b[rs]k_live_[A-Za-z0-9]{20,}\b`)},
	{"jwt", []string{"eyJ"}, regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}\b`)},
}

func scanSecrets(s string) []Finding {
	var out []Finding
	for _, p := range secretPatterns {
		if !containsAny(s, p.lit) {
			continue
		}
		for _, m := range p.re.FindAllStringIndex(s, -1) {
			// A private key whose END line has not come (yet) runs to the
			// end of the text: a stream must hold it back, and an answer
			// cut short must not hand out the half it has.
			if p.kind == "private-key" && !strings.Contains(s[m[0]:m[1]], "-----END") {
				m[1] = len(s)
			}
			out = append(out, Finding{Scanner: ScanSecrets, Kind: p.kind, Start: m[0], End: m[1]})
		}
	}
	return out
}

var (
	cardRe  = regexp.MustCompile(`\b\d(?:[ -]?\d){12,18}\b`)
	ibanRe  = regexp.MustCompile(`\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b`)
	emailRe = regexp.MustCompile(`\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b`)
)

// scanPII finds payment card numbers (13 to 19 digits passing the Luhn
// check, so that order numbers and phone numbers do not count), IBANs
// (passing the ISO 13616 mod-97 check) and email addresses.
func scanPII(s string) []Finding {
	var out []Finding
	if strings.IndexFunc(s, unicode.IsDigit) >= 0 {
		for _, m := range cardRe.FindAllStringIndex(s, -1) {
			if luhn(digits(s[m[0]:m[1]])) {
				out = append(out, Finding{Scanner: ScanPII, Kind: "card-number", Start: m[0], End: m[1]})
			}
		}
		for _, m := range ibanRe.FindAllStringIndex(s, -1) {
			if ibanValid(strings.ReplaceAll(s[m[0]:m[1]], " ", "")) {
				out = append(out, Finding{Scanner: ScanPII, Kind: "iban", Start: m[0], End: m[1]})
			}
		}
	}
	if strings.IndexByte(s, '@') >= 0 {
		for _, m := range emailRe.FindAllStringIndex(s, -1) {
			out = append(out, Finding{Scanner: ScanPII, Kind: "email", Start: m[0], End: m[1]})
		}
	}
	return out
}

func containsAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// luhn is the payment-card check digit test.
func luhn(d string) bool {
	if len(d) < 13 || len(d) > 19 {
		return false
	}
	sum := 0
	for i := range len(d) {
		n := int(d[len(d)-1-i] - '0')
		if i%2 == 1 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return sum%10 == 0
}

// ibanValid is the ISO 13616 check: move the first four characters to the
// end, letters to numbers (A=10 … Z=35), and the number mod 97 must be 1.
func ibanValid(s string) bool {
	if len(s) < 15 || len(s) > 34 {
		return false
	}
	var b strings.Builder
	for _, r := range s[4:] + s[:4] {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			fmt.Fprintf(&b, "%d", r-'A'+10)
		default:
			return false
		}
	}
	n, ok := new(big.Int).SetString(b.String(), 10)
	return ok && new(big.Int).Mod(n, big.NewInt(97)).Int64() == 1
}

// scanInvisible reports each invisible character and each run of text
// hidden in Unicode tag characters, with spans so they can be stripped.
func scanInvisible(s string) []Finding {
	var out []Finding
	for i, r := range s {
		if textnorm.Invisible(r) {
			k := "invisible-character"
			if r >= 0xE0000 && r <= 0xE007F {
				k = "tag-character"
			}
			if n := len(out); n > 0 && out[n-1].Kind == k && out[n-1].End == i {
				out[n-1].End = i + len(string(r))
				continue
			}
			out = append(out, Finding{Scanner: ScanInvisible, Kind: k, Start: i, End: i + len(string(r))})
		}
	}
	return out
}

// approxTokens estimates a text's tokens as common BPE tokenisers cut
// English: about four characters each, and at least one per word.
func approxTokens(s string) int {
	words := len(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) }))
	return max(words, (len([]rune(s))+3)/4)
}

// scanInjection runs the classifier in the given context.
func scanInjection(c *classifier.Classifier, s string, ctx classifier.Context) []Finding {
	r := c.ClassifyAs(s, ctx)
	if r.Label == "benign" {
		return nil
	}
	return []Finding{{Scanner: ScanInjection, Kind: r.Label, Score: r.Score, Detail: strings.Join(r.Reasons, "; ")}}
}

// scanCanaries finds the canary strings planted in the system prompt.
func scanCanaries(s string, canaries []string) []Finding {
	var out []Finding
	for _, c := range canaries {
		for off := 0; ; {
			i := strings.Index(s[off:], c)
			if i < 0 {
				break
			}
			out = append(out, Finding{Scanner: ScanCanary, Kind: "canary", Start: off + i, End: off + i + len(c)})
			off += i + len(c)
		}
	}
	return out
}

// leakWords is how many consecutive words of the system prompt an output
// must repeat to count as leaking it: long enough that common phrases
// ("you are a helpful assistant") do not, short enough that a paraphrase
// with one sentence copied does.
const leakWords = 8

// scanLeak reports an output that repeats leakWords consecutive words of a
// system prompt (compared in lower case, punctuation ignored).
func scanLeak(out string, systems []string) []Finding {
	for _, sys := range systems {
		if textnorm.ShareWords(out, sys, leakWords) {
			return []Finding{{Scanner: ScanLeak, Kind: "system-prompt", Detail: fmt.Sprintf("repeats %d or more consecutive words of the system prompt", leakWords)}}
		}
	}
	return nil
}

// redact replaces the spans of findings in s by [REDACTED:kind], or
// removes them for invisible characters. Overlapping spans are merged.
func redact(s string, fs []Finding) string {
	var spans []Finding
	for _, f := range fs {
		if f.End > f.Start {
			spans = append(spans, f)
		}
	}
	if len(spans) == 0 {
		return s
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].Start < spans[j].Start })
	var b strings.Builder
	last := 0
	for _, f := range spans {
		if f.Start < last {
			continue // inside a span already replaced
		}
		b.WriteString(s[last:f.Start])
		if f.Scanner != ScanInvisible {
			b.WriteString("[REDACTED:" + f.Kind + "]")
		}
		last = f.End
	}
	b.WriteString(s[last:])
	return b.String()
}
