// Package evasion holds the encoding and smuggling transforms that attackers
// apply to a prompt to slip it past a filter while a language model still
// reads it. The probe scanner sends them; the classifier's robustness is
// measured against them.
package evasion

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// A Transform rewrites a prompt.
type Transform struct {
	Name  string
	Apply func(string) string
}

var registry = map[string]Transform{}

func register(name string, f func(string) string) { registry[name] = Transform{Name: name, Apply: f} }

func init() {
	register("base64", func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) })
	register("hex", func(s string) string { return hex.EncodeToString([]byte(s)) })
	register("rot13", rot13)
	register("leetspeak", func(s string) string { return mapLetters(s, leet) })
	register("homoglyphs", func(s string) string { return mapLetters(s, cyrillic) })
	register("zero-width", zeroWidth)
	register("tags", tags)
	register("fullwidth", fullwidth)
}

// Names lists the transforms, sorted.
func Names() []string { return slices.Sorted(maps.Keys(registry)) }

// Get returns the named transform.
func Get(name string) (Transform, error) {
	t, ok := registry[name]
	if !ok {
		return Transform{}, fmt.Errorf("unknown transform %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return t, nil
}

func rot13(s string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z':
			return 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			return 'A' + (c-'A'+13)%26
		}
		return c
	}, s)
}

var (
	leet     = map[rune]rune{'a': '4', 'e': '3', 'i': '1', 'o': '0', 's': '5', 't': '7'}
	cyrillic = map[rune]rune{'a': 'а', 'c': 'с', 'e': 'е', 'i': 'і', 'o': 'о', 'p': 'р', 'x': 'х', 'y': 'у', 's': 'ѕ', 'j': 'ј'}
)

// mapLetters replaces the lower-case letters that m holds.
func mapLetters(s string, m map[rune]rune) string {
	return strings.Map(func(c rune) rune {
		if r, ok := m[c]; ok {
			return r
		}
		return c
	}, s)
}

// zeroWidth puts a zero-width space between the letters of each word,
// which splits every token a keyword filter looks for.
func zeroWidth(s string) string {
	var b strings.Builder
	prev := false
	for _, c := range s {
		letter := c != ' ' && c != '\n' && c != '\t'
		if letter && prev {
			b.WriteRune('\u200B')
		}
		b.WriteRune(c)
		prev = letter
	}
	return b.String()
}

// tags writes printable ASCII as Unicode tag characters, which most
// interfaces render as nothing ("ASCII smuggling"); other characters stay.
func tags(s string) string {
	return strings.Map(func(c rune) rune {
		if c >= 0x20 && c <= 0x7E {
			return 0xE0000 + c
		}
		return c
	}, s)
}

// fullwidth writes printable ASCII in the full-width forms (U+FF01–FF5E).
func fullwidth(s string) string {
	return strings.Map(func(c rune) rune {
		if c >= 0x21 && c <= 0x7E {
			return c - 0x21 + 0xFF01
		}
		return c
	}, s)
}
