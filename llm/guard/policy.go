// Package guard is a screening proxy for OpenAI-compatible chat APIs: it
// scans the messages going to the model (prompt injection and jailbreaks,
// invisible text, secrets, personal data, size) and the answers coming back
// (canary and system-prompt leakage, secrets, personal data), and blocks,
// redacts or flags what it finds, per scanner, as a policy says.
package guard

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Actions.
const (
	Block  = "block"  // refuse the request (input) or withhold the answer (output)
	Redact = "redact" // replace what was found, forward the rest
	Flag   = "flag"   // forward unchanged, report in the log and a response header
	Off    = "off"
)

// Policy says what each scanner does. The zero value of a field is the
// default of DefaultPolicy.
type Policy struct {
	Input struct {
		Injection string `yaml:"injection"`      // block | flag | off
		Invisible string `yaml:"invisible_text"` // block | redact | flag | off
		Secrets   string `yaml:"secrets"`
		PII       string `yaml:"pii"`
		// MaxTokens bounds the estimated tokens of all messages (0: no
		// bound); a request over it is refused.
		MaxTokens int `yaml:"max_tokens"`
	} `yaml:"input"`
	Output struct {
		Canary  string `yaml:"canary"`             // block | redact | flag | off
		Leak    string `yaml:"system_prompt_leak"` // block | flag | off
		Secrets string `yaml:"secrets"`
		PII     string `yaml:"pii"`
	} `yaml:"output"`
	// Canaries are strings planted in system prompts that must never
	// appear in an answer.
	Canaries []string `yaml:"canaries"`
}

// DefaultPolicy blocks injections, secrets in prompts, canaries and
// system-prompt leaks, redacts invisible text and secrets in answers, and
// flags personal data.
func DefaultPolicy() Policy {
	var p Policy
	p.Input.Injection, p.Input.Invisible, p.Input.Secrets, p.Input.PII = Block, Redact, Block, Flag
	p.Input.MaxTokens = 32768
	p.Output.Canary, p.Output.Leak, p.Output.Secrets, p.Output.PII = Block, Block, Redact, Flag
	return p
}

// LoadPolicy reads a YAML policy; fields it leaves out keep their defaults,
// and unknown fields are errors (a misspelt scanner must not silently
// fall back to its default).
func LoadPolicy(path string) (Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, err
	}
	p := DefaultPolicy()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && err.Error() != "EOF" {
		return Policy{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return Policy{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Validate checks every action against what its scanner supports.
func (p Policy) Validate() error {
	check := func(name, v string, allowed ...string) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return fmt.Errorf("%s: action %q, want one of %s", name, v, strings.Join(allowed, ", "))
	}
	all := []string{Block, Redact, Flag, Off}
	errs := []error{
		check("input.injection", p.Input.Injection, Block, Flag, Off),
		check("input.invisible_text", p.Input.Invisible, all...),
		check("input.secrets", p.Input.Secrets, all...),
		check("input.pii", p.Input.PII, all...),
		check("output.canary", p.Output.Canary, all...),
		check("output.system_prompt_leak", p.Output.Leak, Block, Flag, Off),
		check("output.secrets", p.Output.Secrets, all...),
		check("output.pii", p.Output.PII, all...),
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	if p.Input.MaxTokens < 0 {
		return fmt.Errorf("input.max_tokens %d is negative", p.Input.MaxTokens)
	}
	for _, c := range p.Canaries {
		if len(c) < 8 {
			return fmt.Errorf("canary %q is shorter than 8 characters: it would match ordinary text", c)
		}
	}
	return nil
}

// actionOf resolves the action for a finding in a direction.
func (p Policy) actionOf(output bool, scanner string) string {
	if output {
		switch scanner {
		case ScanCanary:
			return p.Output.Canary
		case ScanLeak:
			return p.Output.Leak
		case ScanSecrets:
			return p.Output.Secrets
		case ScanPII:
			return p.Output.PII
		}
		return Off
	}
	switch scanner {
	case ScanInjection:
		return p.Input.Injection
	case ScanInvisible:
		return p.Input.Invisible
	case ScanSecrets:
		return p.Input.Secrets
	case ScanPII:
		return p.Input.PII
	case ScanTokens:
		return Block
	}
	return Off
}

// Verdict is what the guard decided about one text.
type Verdict struct {
	Blocked []Finding // the findings whose action is block
	Flagged []string  // scanner:kind of the findings whose action is flag
	Text    string    // the text after redaction
}

// kinds lists the scanner/kind pairs of findings, sorted and unique.
func kinds(fs []Finding) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range fs {
		k := f.Scanner + ":" + f.Kind
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
