package report

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/bulwark-sec/bulwark/report/atlas"
)

// Markdown for pull-request comments and job summaries (GitHub flavour):
// the summary, findings, attack runs, sanity checks and how to reproduce.
// Every string from the report goes through mdText, so a class or attack
// name cannot open a link, an image or raw HTML.

func writeMarkdown(w io.Writer, r *Report) error {
	b := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }

	p("# bulwark assessment: %s\n\n", mdText(r.Target.Path))
	if r.Status == StatusPartial {
		p("> [!WARNING]\n> **PARTIAL RUN**: %s. The figures cover only the work done before it stopped.\n\n",
			mdText(orDefault(r.PartialReason, "the run stopped early")))
	}

	p("## Summary\n\n| | |\n|---|---|\n")
	p("| Model | `%s` (%s, %d classes%s) |\n", mdCode(r.Target.Path), mdText(r.Target.Format), r.Target.Classes, mdOpt(", ", r.Target.ThreatModel))
	if r.Target.SHA256 != "" {
		p("| Model sha256 | `%s` |\n", mdCode(r.Target.SHA256))
	}
	p("| Dataset | %s / %s: %d of %d examples |\n", mdText(r.Dataset.Name), mdText(r.Dataset.Split), r.Dataset.N, r.Dataset.Size)
	p("| Dataset fingerprint | `%s` |\n", mdCode(r.Dataset.Fingerprint))
	p("| Status | %s |\n", mdText(r.Status))
	p("| Clean accuracy | **%s** |\n", pct(r.CleanAccuracy))
	if wp := worstPoints(r); len(wp) > 0 {
		parts := make([]string, len(wp))
		for i, l := range wp {
			parts[i] = mdText(l.Label) + ": **" + pct(l.Value) + "**"
		}
		p("| Worst-case robust accuracy | %s |\n", strings.Join(parts, ", "))
	}
	counts := make([]string, 0, 5)
	for _, s := range Severities() {
		if n := countSeverity(r, s); n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, s))
		}
	}
	p("| Findings | %d%s |\n", len(r.Findings), mdOpt(" (", strings.Join(counts, ", "))+closeParen(counts))
	if r.Policy != nil {
		verdict := "✅ PASS"
		if !r.Policy.Pass {
			verdict = "❌ FAIL"
		}
		p("| Policy | **%s** (`%s`) |\n", verdict, mdCode(r.Policy.File))
	}

	if len(r.Comparison) > 0 {
		var v htmlView
		comparison(&v, r)
		p("\n## Comparison\n\nWorst-case robust accuracy per eps, same profile, examples and seed.\n\n| Model | Defenses | DP ε | Clean |")
		for _, e := range v.CompareEps {
			p(" ε=%s |", fmtEps(e))
		}
		if v.CompareCert {
			p(" Certified (L2 radius: accuracy) |")
		}
		p("\n|---|---|---|---|%s%s\n", strings.Repeat("---|", len(v.CompareEps)), map[bool]string{true: "---|"}[v.CompareCert])
		for _, row := range v.Compare {
			eps := "–"
			if row.Epsilon != nil {
				eps = fmtNum(*row.Epsilon)
			}
			p("| %s | %s | %s | %s |", mdText(row.Label), mdText(orDefault(strings.Join(row.Defenses, ", "), "none")), eps, pct(row.CleanAccuracy))
			for _, o := range row.Robust {
				if o.OK {
					p(" %s |", pct(o.V))
				} else {
					p(" – |")
				}
			}
			if v.CompareCert {
				var cells []string
				for _, k := range slices.Sorted(maps.Keys(row.CertifiedAccuracy)) {
					cells = append(cells, k+": "+pct(row.CertifiedAccuracy[k]))
				}
				p(" %s |", orDefault(strings.Join(cells, ", "), "–"))
			}
			p("\n")
		}
		for _, n := range v.CertNotes {
			p("\n%s\n", mdText(n))
		}
	}

	p("\n## Findings\n\n")
	if len(r.Findings) == 0 {
		p("No findings.\n")
	} else {
		p("| Severity | ID | Finding | Where | ATLAS |\n|---|---|---|---|---|\n")
		for _, f := range r.Findings {
			links := make([]string, len(f.ATLAS))
			for i, id := range f.ATLAS {
				links[i] = fmt.Sprintf("[%s](%s)", mdText(id), atlas.URL(id))
			}
			text := "**" + mdText(f.Title) + "**"
			if f.Description != "" {
				text += "<br>" + mdText(f.Description)
			}
			if f.Remediation != "" {
				text += "<br>*Remediation:* " + mdText(f.Remediation)
			}
			p("| %s | `%s` | %s | %s | %s |\n", f.Severity, mdCode(f.ID), text, mdText(findingWhere(f)), strings.Join(links, " "))
		}
	}

	p("\n## Attack runs\n\n")
	if len(r.Attacks) == 0 {
		p("No attacks ran.\n")
	} else {
		p("| Attack | Norm | ε | Robust acc. | Success | Median ‖δ‖ | Queries | Gradients | Time (s) | Status |\n")
		p("|---|---|--:|--:|--:|--:|--:|--:|--:|---|\n")
		for _, a := range r.Attacks {
			status := mdText(a.Status)
			if a.Error != "" {
				status += ": " + mdText(a.Error)
			}
			robust, success, median := runFigures(a)
			p("| %s v%d | %s | %s | %s | %s | %s | %d | %d | %s | %s |\n", mdText(attackName(a.Attack)), a.Version, mdText(NormLabel(a.Norm)),
				fmtEps(a.Eps), robust, success, median, a.Queries, a.Gradients, fmtSecs(a.Seconds), status)
		}
	}

	p("\n## Sanity checks\n\n")
	if len(r.Sanity) == 0 {
		p("No sanity checks ran.\n")
	} else {
		p("| Check | Status | Detail |\n|---|---|---|\n")
		for _, s := range r.Sanity {
			p("| %s (`%s`) | %s | %s |\n", mdText(s.Name), mdCode(s.ID), mdText(s.Status), mdText(s.Detail))
		}
	}

	if r.Policy != nil {
		p("\n## Policy\n\n| Rule | Value | Holds |\n|---|--:|---|\n")
		for _, rr := range r.Policy.Rules {
			v := "–"
			if rr.Value != nil {
				v = fmtNum(*rr.Value)
			}
			holds := "yes"
			if !rr.Holds {
				holds = "**no**"
			}
			if rr.Error != "" {
				holds += ": " + mdText(rr.Error)
			}
			p("| `%s` | %s | %s |\n", mdCode(rr.Rule), v, holds)
		}
	}

	p("\n## Reproducibility\n\n")
	p("%s\n", mdFence(r.Command, "sh"))
	p("\n- bulwark %s%s%s\n", mdText(r.Tool.Version), mdOpt(", engine ", r.Tool.Engine), mdOpt(", ", r.Tool.GoVersion))
	p("- seed `%d`%s\n", r.Seed, mdOpt(", profile ", r.Profile))
	p("- dataset fingerprint `%s`\n", mdCode(r.Dataset.Fingerprint))
	if r.Dataset.SampleSeed != nil {
		p("- sample seed `%d`\n", *r.Dataset.SampleSeed)
	}
	if t := fmtTime(r.Started); t != "" {
		p("- started %s, finished %s\n", t, fmtTime(r.Finished))
	}
	p("- report schema %s\n", mdText(r.SchemaVersion))
	if n := len(r.Dataset.Indices); n > 0 {
		idx := make([]string, n)
		for i, x := range r.Dataset.Indices {
			idx[i] = strconv.Itoa(x)
		}
		p("\n<details><summary>%d sample indices</summary>\n\n%s\n\n</details>\n", n, mdFence(strings.Join(idx, " "), ""))
	}
	return b.Flush()
}

func countSeverity(r *Report, s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// findingWhere names the attack run a finding is about.
func findingWhere(f Finding) string {
	var parts []string
	if f.Attack != "" {
		parts = append(parts, attackName(f.Attack))
	}
	if f.Norm != "" {
		parts = append(parts, NormLabel(f.Norm))
	}
	if f.Eps != 0 {
		parts = append(parts, "ε="+fmtEps(f.Eps))
	}
	return strings.Join(parts, " ")
}

// mdText escapes text for a Markdown table cell: characters that start
// emphasis, links, code or HTML are backslash-escaped or written as
// entities, pipes cannot end the cell and newlines cannot end the row.
// (With '[' escaped, '!' and '(' cannot start an image or a link.)
func mdText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\', '`', '*', '_', '[', ']', '|', '~':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\n', '\r', '\t':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdCode makes text safe inside a one-backtick code span in a table cell.
// Backticks cannot be escaped there, so they become a look-alike; pipes
// must still be escaped because GitHub splits cells first.
func mdCode(s string) string {
	return strings.NewReplacer("`", "ˋ", "|", `\|`, "\n", " ", "\r", " ").Replace(s)
}

// mdFence puts text in a fenced code block whose fence is longer than any
// run of backticks inside, so the text cannot close it.
func mdFence(s, lang string) string {
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", max(3, longest+1))
	return fence + lang + "\n" + s + "\n" + fence
}

// mdOpt is prefix + escaped s, or "" when s is empty.
func mdOpt(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + mdText(s)
}

func closeParen(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return ")"
}
