package redteam

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"

	"github.com/bulwark-sec/bulwark/internal/atomicfile"
	"github.com/bulwark-sec/bulwark/report/atlas"
)

// Write puts report.json, report.html, report.sarif and attempts.jsonl
// (every attempt: prompts, answers, detector verdicts) in dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, fn := range map[string]func(io.Writer) error{
		"report.json":    r.writeJSON,
		"report.html":    r.writeHTML,
		"report.sarif":   r.writeSARIF,
		"attempts.jsonl": r.writeAttempts,
	} {
		if err := atomicfile.Write(filepath.Join(dir, name), 0o644, fn); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

func (r *Report) writeJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

func (r *Report) writeAttempts(w io.Writer) error {
	e := json.NewEncoder(w)
	for _, a := range r.Results {
		if err := e.Encode(a); err != nil {
			return err
		}
	}
	return nil
}

// writeSARIF: one rule per probe, one result per probe that succeeded at
// least once (level error), located at the target URL.
func (r *Report) writeSARIF(w io.Writer) error {
	log := sarif.NewReport()
	run := sarif.NewRunWithInformationURI("bulwark llm scan", "https://github.com/bulwark-sec/bulwark")
	for _, p := range r.Probes {
		rule := run.AddRule("llm/" + p.Probe).
			WithShortDescription(sarif.NewMultiformatMessageString().WithText(p.Description)).
			WithProperties(sarif.NewPropertyBag().Add("atlas", p.ATLAS).WithTags(p.ATLAS))
		if len(p.ATLAS) > 0 {
			rule.WithHelpURI(atlas.URL(p.ATLAS[0]))
		}
		if p.Successes == 0 {
			continue
		}
		msg := fmt.Sprintf("%s: %d of %d attempts succeeded against %s (rate %.2f, 95%% CI %.2f–%.2f).",
			p.Probe, p.Successes, p.Attempts, r.Model, p.SuccessRate, p.CI95[0], p.CI95[1])
		run.CreateResultForRule("llm/" + p.Probe).
			WithLevel("error").
			WithMessage(sarif.NewTextMessage(msg)).
			AddLocation(sarif.NewLocationWithPhysicalLocation(
				sarif.NewPhysicalLocation().WithArtifactLocation(sarif.NewSimpleArtifactLocation(r.Target)))).
			WithProperties(sarif.NewPropertyBag().Add("success_rate", p.SuccessRate).Add("ci95", p.CI95).Add("attempts", p.Attempts))
	}
	run.AddInvocation(sarif.NewInvocation().WithExecutionSuccessful(r.Status == "complete"))
	log.AddRun(run)
	if err := log.PrettyWrite(w); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

var page = template.Must(template.New("r").Funcs(template.FuncMap{
	"pct":   func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) },
	"atlas": atlas.URL,
	"short": func(s string) string {
		if r := []rune(s); len(r) > 400 {
			return string(r[:400]) + "…"
		}
		return s
	},
	"join": strings.Join,
}).Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>bulwark llm scan: {{.Model}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1b1f24;padding:0 1em}
h1{font-size:22px;margin-bottom:.2em} .sub{color:#57606a}
table{border-collapse:collapse;width:100%;margin:1em 0} th,td{border-bottom:1px solid #d0d7de;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} .bar{background:#eee;height:10px;width:120px;display:inline-block;vertical-align:middle}
.bar i{display:block;height:10px;background:#cf222e} .ok{color:#1a7f37} .bad{color:#cf222e;font-weight:600}
details{margin:.4em 0} pre{white-space:pre-wrap;background:#f6f8fa;padding:6px;margin:4px 0;font-size:12px}
.tag{font-size:12px;background:#ddf4ff;border-radius:8px;padding:1px 6px;margin-right:3px;text-decoration:none}
</style></head><body>
<h1>LLM probe scan: {{.Model}}</h1>
<div class="sub">{{.Target}} · {{.Started.Format "2006-01-02 15:04 UTC"}} · {{.Requests}} requests · status {{.Status}}{{if .Reason}} ({{.Reason}}){{end}} · seed {{.Seed}}</div>
<p>Attack success rate over all {{.Overall.Attempts}} attempts: <b class="{{if .Overall.Successes}}bad{{else}}ok{{end}}">{{pct .Overall.SuccessRate}}</b>
(95% bootstrap interval {{pct (index .Overall.CI95 0)}}–{{pct (index .Overall.CI95 1)}}); {{.Overall.Blocked}} blocked by a guard, {{.Overall.Refusals}} refused.</p>
<table><tr><th>probe</th><th>ATLAS</th><th>attempts</th><th>success rate</th><th>95% CI</th><th>blocked</th><th>refused</th><th>echoed</th><th>regex</th><th>classifier</th><th>errors</th></tr>
{{range .Probes}}<tr><td><b>{{.Probe}}</b><br><span class="sub">{{.Description}}</span></td>
<td>{{range .ATLAS}}<a class="tag" href="{{atlas .}}">{{.}}</a>{{end}}</td><td>{{.Attempts}}</td>
<td><span class="bar"><i style="width:{{pct .SuccessRate}}"></i></span> <span class="{{if .Successes}}bad{{else}}ok{{end}}">{{pct .SuccessRate}}</span> ({{.Successes}})</td>
<td style="white-space:nowrap">{{pct (index .CI95 0)}}–{{pct (index .CI95 1)}}</td><td>{{.Blocked}}</td><td>{{.Refusals}}</td><td>{{.Echoes}}</td><td>{{.RegexHits}}</td><td>{{.ClassifierHits}}</td><td>{{.Errors}}</td></tr>
{{end}}</table>
<h2>Attempts that succeeded</h2>
{{if not .Overall.Successes}}<p>None.</p>{{end}}
{{range .Results}}{{if and .Detection.Success (not .Blocked)}}<details><summary><b>{{.Probe}}</b> #{{.Index}}</summary>
{{range .Turns}}<pre>user: {{short .}}</pre>{{end}}{{range .Answers}}<pre>model: {{short .}}</pre>{{end}}</details>
{{end}}{{end}}
<p class="sub">Every attempt, with prompts, answers and detector verdicts: attempts.jsonl. Success means the answer contained the attempt's
fresh random marker (an injected instruction was followed) or the canary planted in the system prompt (it leaked), after normalisation.
The regex and classifier columns count answers the optional detectors flagged (a --detector-regex pattern matched; bulwark's prompt
classifier read the answer as an injection or jailbreak); they are for review and do not count as successes.</p>
</body></html>
`))

func (r *Report) writeHTML(w io.Writer) error { return page.Execute(w, r) }
