// Package engine is the only place in bulwark that imports GoMLX. It compiles
// an nn.Graph into executable functions (logits, loss gradients with respect
// to the input, training steps, per-example gradients) on GoMLX's pure-Go
// backend.
//
// Two kernels are our own rather than GoMLX's: convolution (im2col plus one
// matrix product) and pooling (reshape-reduce or strided slices). The
// backend's built-in convolution is a naive loop about 40x slower, and its
// max-pool has no gradient (see docs/engine.md).
package engine

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // registers the pure-Go backend
)

var (
	backendOnce sync.Once
	backend     compute.Backend
	backendErr  error
)

// getBackend creates the process-wide backend on first use.
func getBackend() (compute.Backend, error) {
	backendOnce.Do(func() {
		cfg := os.Getenv(compute.ConfigEnvVar)
		// GoMLX v0.28.2's go backend deadlocks with parallelism=2 (a worker
		// pool waits on itself); refuse it instead of hanging.
		if slices.Contains(strings.FieldsFunc(cfg, func(r rune) bool { return r == ':' || r == ',' }), "parallelism=2") {
			backendErr = fmt.Errorf("%s=%q: parallelism=2 deadlocks GoMLX v0.28.2's go backend; leave it unset", compute.ConfigEnvVar, cfg)
			return
		}
		backend, backendErr = compute.New()
	})
	return backend, backendErr
}

// BackendName describes the backend in use, for `bulwark version`.
func BackendName() string {
	b, err := getBackend()
	if err != nil {
		return "unavailable: " + err.Error()
	}
	return fmt.Sprintf("gomlx %s (%s)", GoMLXVersion, b.Description())
}

// GoMLXVersion is the pinned GoMLX release (kept in step with go.mod).
const GoMLXVersion = "v0.28.2"
