package data

import (
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// A CSV dataset is numeric feature columns plus one label column: the
// column named label, class, target or y (in that order of preference)
// when the first line is a header, else the last column. The first line is
// a header when it names a label column or when a column other than the
// last (which may hold class names) is not a number.

// labelColumnNames are the header names taken as the label column.
var labelColumnNames = []string{"label", "class", "target", "y"}

// table is a decoded CSV file.
type table struct {
	x        []float32
	features int
	y        []int
	classes  []string
}

// decodeCSV reads a CSV dataset. Errors name the line and column (1-based,
// with the header's name for the column when there is one).
func decodeCSV(r io.Reader) (*table, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	first, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("empty file: no header and no rows")
	}
	if err != nil {
		return nil, csvError(err, 0)
	}
	first[0] = strings.TrimPrefix(first[0], "\ufeff") // spreadsheet exports start with a BOM
	cols := len(first)
	if cols < 2 {
		return nil, errors.New("line 1: one column; want at least one feature column and a label column")
	}

	labelCol, header := cols-1, false
	for _, want := range labelColumnNames {
		if i := slices.IndexFunc(first, func(s string) bool { return strings.EqualFold(strings.TrimSpace(s), want) }); i >= 0 {
			labelCol, header = i, true
			break
		}
	}
	for _, s := range first[:cols-1] {
		if _, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
			header = true
		}
	}
	var names []string
	if header {
		names = slices.Clone(first)
	}
	column := func(j int) string {
		if names != nil && strings.TrimSpace(names[j]) != "" {
			return fmt.Sprintf("column %d (%s)", j+1, strings.TrimSpace(names[j]))
		}
		return fmt.Sprintf("column %d", j+1)
	}

	t := &table{features: cols - 1}
	var labels []string // raw label text, decided on once all are seen
	var lines []int     // the line of each label, for errors
	row := func(rec []string) error {
		for j, s := range rec {
			line, _ := cr.FieldPos(j)
			s = strings.TrimSpace(s)
			if j == labelCol {
				if s == "" {
					return fmt.Errorf("line %d, %s: empty label", line, column(j))
				}
				labels = append(labels, strings.Clone(s))
				lines = append(lines, line)
				continue
			}
			v, err := strconv.ParseFloat(s, 32)
			switch {
			case s == "":
				return fmt.Errorf("line %d, %s: empty value (missing values are not supported)", line, column(j))
			case errors.Is(err, strconv.ErrRange):
				return fmt.Errorf("line %d, %s: %q is out of the float32 range", line, column(j), s)
			case err != nil:
				return fmt.Errorf("line %d, %s: %q is not a number", line, column(j), s)
			}
			t.x = append(t.x, float32(v))
		}
		if int64(len(t.x)) > MaxValues {
			return fmt.Errorf("more than the limit of %d values", MaxValues)
		}
		return nil
	}
	if !header {
		if err := row(first); err != nil {
			return nil, err
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(err, cols)
		}
		if err := row(rec); err != nil {
			return nil, err
		}
	}
	if len(labels) == 0 {
		return nil, errors.New("no data rows")
	}

	// Labels: all numbers means class indices; otherwise the distinct
	// texts, sorted, are the class names.
	numeric := true
	for _, s := range labels {
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			numeric = false
			break
		}
	}
	t.y = make([]int, len(labels))
	if numeric {
		maxLabel := 0
		for i, s := range labels {
			v, _ := strconv.ParseFloat(s, 64)
			if v < 0 || v != math.Trunc(v) || v >= MaxClasses {
				return nil, fmt.Errorf("line %d, %s: label %q is not a class index (a whole number in 0..%d)", lines[i], column(labelCol), s, MaxClasses-1)
			}
			t.y[i] = int(v)
			maxLabel = max(maxLabel, t.y[i])
		}
		t.classes = numberedClasses(maxLabel + 1)
		return t, nil
	}
	t.classes = slices.Clone(labels)
	slices.Sort(t.classes)
	t.classes = slices.Compact(t.classes)
	if len(t.classes) > MaxClasses {
		return nil, fmt.Errorf("%d distinct labels, more than the limit of %d classes", len(t.classes), MaxClasses)
	}
	for i, s := range labels {
		t.y[i], _ = slices.BinarySearch(t.classes, s)
	}
	return t, nil
}

// csvError rewrites encoding/csv's errors to say line and column the same
// way as the rest.
func csvError(err error, cols int) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return err
	}
	if errors.Is(pe.Err, csv.ErrFieldCount) {
		return fmt.Errorf("line %d: wrong number of fields (the first line has %d)", pe.StartLine, cols)
	}
	return fmt.Errorf("line %d, column %d: %v", pe.Line, pe.Column, pe.Err)
}

// loadCSV loads a CSV file, which is always a single split.
func loadCSV(name, path, split string) (*Dataset, error) {
	if split != "" {
		return nil, fmt.Errorf("%s: a CSV file is a single split, not %q: %w", path, split, ErrSingleSplit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	tee := io.TeeReader(f, h)
	t, err := decodeCSV(tee)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Dataset{
		Name:        name,
		Source:      path,
		Split:       "",
		X:           t.x,
		Shape:       []int{t.features},
		Y:           t.y,
		Classes:     t.classes,
		Fingerprint: fingerprint(h, ""),
		Preprocess:  Preprocess{Scale: 1, Layout: LayoutFeatures},
	}, nil
}
