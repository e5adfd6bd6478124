package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// SharedPath finds shared/REL by walking up from the test's folder: the
// shared data sits beside the checkout on a developer's machine and inside
// it on others. The test is skipped when it is not there.
func SharedPath(t testing.TB, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "shared", rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Skipf("shared/%s not found above the package folder", rel)
		}
		dir = up
	}
}
