package data

import (
	"slices"
	"testing"
)

// toy returns n examples of shape [2] where example i is (i, -i), label i%4.
func toy(n int) *Dataset {
	d := &Dataset{Name: "toy", Split: "train", Shape: []int{2}, Classes: numberedClasses(4), Fingerprint: "sha256:ab",
		Preprocess: Preprocess{Scale: 1, Layout: LayoutFeatures}}
	for i := 0; i < n; i++ {
		d.X = append(d.X, float32(i), float32(-i))
		d.Y = append(d.Y, i%4)
	}
	return d
}

// ids returns the example ids (first feature) of d.
func ids(d *Dataset) []int {
	out := make([]int, d.Len())
	for i := range out {
		out[i] = int(d.Example(i)[0])
		if d.Example(i)[1] != -d.Example(i)[0] || d.Y[i] != out[i]%4 {
			panic("example and label out of step")
		}
	}
	return out
}

func TestSplitFraction(t *testing.T) {
	d := toy(101)
	rest, held := SplitFraction(d, 0.2, 42)
	if held.Len() != 20 || rest.Len() != 81 {
		t.Fatalf("sizes %d/%d, want 81/20", rest.Len(), held.Len())
	}
	all := append(ids(rest), ids(held)...)
	slices.Sort(all)
	for i, v := range all {
		if v != i {
			t.Fatalf("split is not a partition: %v", all)
		}
	}
	if !slices.IsSorted(ids(held)) || !slices.IsSorted(ids(rest)) {
		t.Fatal("parts do not keep the original order")
	}
	rest2, held2 := SplitFraction(d, 0.2, 42)
	if !slices.Equal(ids(held), ids(held2)) || !slices.Equal(ids(rest), ids(rest2)) {
		t.Fatal("same seed gave a different split")
	}
	_, held3 := SplitFraction(d, 0.2, 43)
	if slices.Equal(ids(held), ids(held3)) {
		t.Fatal("different seeds gave the same split")
	}
	if held.Fingerprint != d.Fingerprint || held.Name != "toy" || held.Split != "train" || held.NumClasses() != 4 {
		t.Fatalf("metadata not kept: %+v", held)
	}
	// Rounding and clamping.
	for _, c := range []struct {
		frac float64
		held int
	}{{0.5, 51}, {0.004, 0}, {0.005, 1}, {-1, 0}, {2, 101}, {0, 0}, {1, 101}} {
		_, h := SplitFraction(d, c.frac, 1)
		if h.Len() != c.held {
			t.Fatalf("frac %v held %d, want %d", c.frac, h.Len(), c.held)
		}
	}
}

func TestSubsetHeadExample(t *testing.T) {
	d := toy(5)
	s := d.Subset([]int{4, 0, 4})
	if !slices.Equal(ids(s), []int{4, 0, 4}) || !slices.Equal(s.Y, []int{0, 0, 0}) {
		t.Fatalf("subset %v %v", s.X, s.Y)
	}
	s.X[0] = 99 // a copy: the original is untouched
	if d.X[8] != 4 {
		t.Fatal("Subset shares X")
	}
	s.Shape[0] = 7
	if d.Shape[0] != 2 {
		t.Fatal("Subset shares Shape")
	}
	if h := d.Head(2); !slices.Equal(ids(h), []int{0, 1}) {
		t.Fatalf("head %v", ids(h))
	}
	for _, n := range []int{0, -1, 5, 9} {
		if h := d.Head(n); h.Len() != 5 {
			t.Fatalf("Head(%d) has %d", n, h.Len())
		}
	}
	ex := d.Example(1)
	if len(ex) != 2 || cap(ex) != 2 || ex[0] != 1 {
		t.Fatalf("example %v cap %d", ex, cap(ex))
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Subset with a bad index did not panic")
		}
	}()
	d.Subset([]int{5})
}

func TestValidate(t *testing.T) {
	d := toy(3)
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	d.Y[2] = 4
	wantErr(t, d.Validate(), "toy", "example 2 has label 4, outside 0..3")
	d.Y[2] = 2
	d.X = d.X[:5]
	wantErr(t, d.Validate(), "5 values for 3 examples")
}
