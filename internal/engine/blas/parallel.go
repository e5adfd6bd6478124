package blas

import (
	"runtime"
	"sync"
)

// Threading. OpenBLAS (Debian's openblas-pthread) can thread each sgemm
// itself, but most of a network's products here are small (one image of a
// convolution: 32..64 rows) and the rest of the work (im2col, pooling,
// batch norm, elementwise ops) is ours. So OpenBLAS is held to one thread
// (cblas.go) and we split every op across goroutines instead: the batch for
// convolutions and pools, rows or columns of C for the big dense products
// (pgemm). See the package documentation for the measurements.

// threadedBLAS selects the alternative the measurements compare against:
// OpenBLAS threads every sgemm itself and convolutions run their images on
// one goroutine (the other ops still use goroutines). Only benchmarks set
// it, through useThreadedBLAS.
var threadedBLAS = false

func useThreadedBLAS(on bool) {
	threadedBLAS = on
	if on {
		setBLASThreads(defaultWorkers())
	} else {
		setBLASThreads(1)
	}
}

// gemmWorkers is how many goroutines may split work that is mostly sgemm.
func gemmWorkers(workers int) int {
	if threadedBLAS {
		return 1
	}
	return workers
}

// defaultWorkers is how many goroutines a plan splits its work into.
func defaultWorkers() int { return max(1, runtime.GOMAXPROCS(0)) }

// parallel runs fn over [0, n) split into at most workers contiguous chunks
// of at least grain items each. Chunk w goes to worker index w (for
// per-worker scratch); chunk 0 runs on the calling goroutine. It returns
// the number of chunks, so callers can reduce per-worker partial results.
func parallel(workers, n, grain int, fn func(w, lo, hi int)) int {
	if n <= 0 {
		return 0
	}
	grain = max(grain, 1)
	parts := min(workers, (n+grain-1)/grain)
	if parts <= 1 {
		fn(0, 0, n)
		return 1
	}
	var wg sync.WaitGroup
	for w := 1; w < parts; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(w, w*n/parts, (w+1)*n/parts)
		}()
	}
	fn(0, 0, n/parts)
	wg.Wait()
	return parts
}

// parallelAligned is parallel with chunk boundaries on multiples of align
// (except the end), which keeps OpenBLAS's register blocks whole.
func parallelAligned(workers, n, align int, fn func(w, lo, hi int)) {
	blocks := (n + align - 1) / align
	parallel(workers, blocks, 1, func(w, lo, hi int) {
		fn(w, lo*align, min(hi*align, n))
	})
}
