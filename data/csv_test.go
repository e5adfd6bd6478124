package data

import (
	"path/filepath"
	"slices"
	"testing"
)

func loadCSVText(t *testing.T, text string) (*Dataset, error) {
	t.Helper()
	p := writeFile(t, filepath.Join(t.TempDir(), "iris.csv"), []byte(text))
	return Load(p, "")
}

func TestCSVHeaderAndStringLabels(t *testing.T) {
	// A BOM, a label column that is not last, class names as labels.
	d, err := loadCSVText(t, "\ufeffsepal, species ,petal\n5.1,setosa,1.4\n 7.0,versicolor,4.7\n6.3,virginica,6.0\n4.9,setosa,1.5\n")
	if err == nil {
		t.Fatal("species is not a label column name, so petal must be the label")
	}
	wantErr(t, err, "iris.csv", "line 2, column 2 (species)", `"setosa" is not a number`)

	d, err = loadCSVText(t, "\ufeffsepal,Class,petal\n5.1,setosa,1.4\n 7.0,versicolor,4.7\n6.3,virginica,6.0\n4.9,setosa,1.5\n")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Shape, []int{2}) || !slices.Equal(d.X, []float32{5.1, 1.4, 7.0, 4.7, 6.3, 6.0, 4.9, 1.5}) {
		t.Fatalf("shape %v X %v", d.Shape, d.X)
	}
	if !slices.Equal(d.Classes, []string{"setosa", "versicolor", "virginica"}) || !slices.Equal(d.Y, []int{0, 1, 2, 0}) {
		t.Fatalf("classes %q labels %v", d.Classes, d.Y)
	}
	if d.Preprocess != (Preprocess{Scale: 1, Layout: LayoutFeatures}) || d.Split != "" {
		t.Fatalf("preprocess %+v split %q", d.Preprocess, d.Split)
	}
}

func TestCSVNoHeaderNumericLabels(t *testing.T) {
	d, err := loadCSVText(t, "0.5,1,2\n-1e3,2,0\n3,4,1.0\n")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.X, []float32{0.5, 1, -1000, 2, 3, 4}) || !slices.Equal(d.Y, []int{2, 0, 1}) || !slices.Equal(d.Classes, []string{"0", "1", "2"}) {
		t.Fatalf("X %v Y %v classes %q", d.X, d.Y, d.Classes)
	}
	// Header without a named label column: the last column is the label.
	d, err = loadCSVText(t, "a,b,outcome\n1,2,1\n3,4,0\n")
	if err != nil || d.Len() != 2 || !slices.Equal(d.Y, []int{1, 0}) {
		t.Fatalf("%v %v", d, err)
	}
	// The fingerprint depends on the content.
	d2, err := loadCSVText(t, "a,b,outcome\n1,2,1\n3,4,1\n")
	if err != nil || d2.Fingerprint == d.Fingerprint {
		t.Fatalf("fingerprints %s %s (%v)", d.Fingerprint, d2.Fingerprint, err)
	}
}

func TestCSVErrors(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"bad value", "x1,x2,label\n1,2,0\n3,abc,1\n", []string{"iris.csv", "line 3, column 2 (x2)", `"abc" is not a number`}},
		{"bad value no header", "1,2,0\n3,4,1\n5,,1\n", []string{"iris.csv", "line 3, column 2:", "empty value"}},
		{"negative label", "x,label\n1,0\n2,-1\n", []string{"iris.csv", "line 3, column 2 (label)", `label "-1" is not a class index`}},
		{"fractional label", "1,0\n2,1.5\n", []string{"line 2, column 2", `label "1.5"`}},
		{"field count", "1,2,0\n3,4\n", []string{"iris.csv", "line 2: wrong number of fields (the first line has 3)"}},
		{"quote", "1,2,0\n3,4\"x,1\n", []string{"iris.csv", "line 2, column"}},
		{"empty", "", []string{"iris.csv", "empty file"}},
		{"header only", "a,b,label\n", []string{"iris.csv", "no data rows"}},
		{"one column", "label\n1\n", []string{"iris.csv", "one column"}},
		{"out of range", "1e40,1\n", []string{"line 1, column 1", "out of the float32 range"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadCSVText(t, c.text)
			wantErr(t, err, c.want...)
		})
	}
	p := writeFile(t, filepath.Join(t.TempDir(), "x.csv"), []byte("1,0\n"))
	_, err := Load(p, "train")
	wantErr(t, err, "x.csv", "single split")
}

func TestCSVNaNCaughtByValidate(t *testing.T) {
	d, err := loadCSVText(t, "1,0\nnan,1\n")
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, d.Validate(), "iris.csv", "example 1 has NaN at position 0")
}
