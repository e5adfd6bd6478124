package report

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/bulwark-sec/bulwark/report/atlas"
)

// The HTML report is one file that opens offline and from an attachment:
// inline CSS, the chart as inline SVG, thumbnails as data: URIs, no script
// at all, and a Content-Security-Policy that forbids loading anything, so
// that even a string that slipped past escaping could not fetch or run
// code. html/template does the escaping.

//go:embed report.html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":         pct,
	"eps":         fmtEps,
	"num":         fmtNum,
	"secs":        fmtSecs,
	"time":        fmtTime,
	"norm":        NormLabel,
	"attack":      attackName,
	"short":       shortHash,
	"lower":       strings.ToLower,
	"class":       func(r *Report, i int) string { return className(r, i) },
	"atlasURL":    atlas.URL,
	"atlasName":   atlas.FullName,
	"thousands":   thousands,
	"deref":       func(p *float64) float64 { return *p },
	"ran":         ran,
	"thousands64": func(v int64) string { return thousands(int(v)) },
}).Parse(htmlSource))

type htmlView struct {
	R        *Report
	Worst    []labelled
	Counts   []sevCount
	Charts   []template.HTML
	Examples []htmlExample
	Indices  string
	// ManyIndices folds the index list away when it is long.
	ManyIndices bool
	Duration    string
	ProfileSpec string
	Broken      int // policy rules that do not hold
	// Comparison: one row per model, the union of the worst-case eps grid,
	// and one chart with each model's worst-case curve.
	Compare      []compareRow
	CompareEps   []float64
	CompareCert  bool
	CertNotes    []string
	CompareChart template.HTML
}

type compareRow struct {
	ModelSummary
	Robust []optFloat
}

type optFloat struct {
	V  float64
	OK bool
}

// comparison lays out r.Comparison for the template.
func comparison(v *htmlView, r *Report) {
	if len(r.Comparison) == 0 {
		return
	}
	seen := map[float64]bool{}
	for _, m := range r.Comparison {
		for _, p := range m.WorstCase {
			if p.Eps > 0 && !seen[p.Eps] {
				seen[p.Eps] = true
				v.CompareEps = append(v.CompareEps, p.Eps)
			}
		}
		v.CompareCert = v.CompareCert || len(m.CertifiedAccuracy) > 0
		if c := m.Certification; c != nil {
			v.CertNotes = append(v.CertNotes, fmt.Sprintf("%s: certified by randomized smoothing (Cohen et al. 2019) at its training noise σ = %s "+
				"on the first %d examples, %d noisy samples each, every certificate wrong with probability at most %s; "+
				"bulwark certify takes 100,000 samples for the full figure.", m.Label, fmtNum(c.Sigma), c.Examples, c.Samples, fmtNum(c.Alpha)))
		}
	}
	sort.Float64s(v.CompareEps)
	var curves []Curve
	norm := ""
	for _, m := range r.Comparison {
		row := compareRow{ModelSummary: m}
		for _, e := range v.CompareEps {
			o := optFloat{}
			for _, p := range m.WorstCase {
				if p.Eps == e {
					o = optFloat{p.RobustAccuracy, true}
				}
			}
			row.Robust = append(row.Robust, o)
		}
		v.Compare = append(v.Compare, row)
		for _, c := range m.Curves {
			if c.Name == WorstCaseCurve && (norm == "" || c.Norm == norm) {
				norm = c.Norm
				curves = append(curves, Curve{Name: m.Label, Norm: c.Norm, Points: c.Points})
			}
		}
	}
	if len(curves) > 0 {
		// robustnessSVG escapes every string it writes.
		v.CompareChart = template.HTML(robustnessSVG(norm, curves))
	}
}

type sevCount struct {
	Severity Severity
	N        int
}

type htmlExample struct {
	Example
	Original, Adversarial, Diff template.URL
}

func writeHTML(w io.Writer, r *Report) error {
	v := htmlView{R: r, Worst: worstPoints(r), Duration: fmtDuration(r)}
	for _, s := range Severities() {
		n := 0
		for _, f := range r.Findings {
			if f.Severity == s {
				n++
			}
		}
		v.Counts = append(v.Counts, sevCount{s, n})
	}
	norms, byNorm := normCurves(r)
	for _, n := range norms {
		// robustnessSVG escapes every string it writes.
		v.Charts = append(v.Charts, template.HTML(robustnessSVG(n, byNorm[n])))
	}
	for _, e := range r.Examples {
		v.Examples = append(v.Examples, htmlExample{Example: e,
			Original: pngURL(e.Original), Adversarial: pngURL(e.Adversarial), Diff: pngURL(e.Diff)})
	}
	idx := make([]string, len(r.Dataset.Indices))
	for i, x := range r.Dataset.Indices {
		idx[i] = strconv.Itoa(x)
	}
	v.Indices = strings.Join(idx, " ")
	v.ManyIndices = len(idx) > 40
	if len(r.ProfileSpec) > 0 {
		var buf bytes.Buffer
		if json.Indent(&buf, r.ProfileSpec, "", "  ") == nil {
			v.ProfileSpec = buf.String()
		} else {
			v.ProfileSpec = string(r.ProfileSpec)
		}
	}
	comparison(&v, r)
	if r.Policy != nil {
		for _, rr := range r.Policy.Rules {
			if !rr.Holds {
				v.Broken++
			}
		}
	}
	if err := htmlTemplate.Execute(w, v); err != nil {
		return fmt.Errorf("writing the HTML report: %w", err)
	}
	return nil
}

// pngURL makes a data: URI of PNG bytes; the bytes are base64, so the URI
// cannot carry anything but an image.
func pngURL(b []byte) template.URL {
	if len(b) == 0 {
		return ""
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b))
}

// thousands groups digits: 1234567 → "1,234,567".
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
