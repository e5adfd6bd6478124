package blas

import (
	"runtime"
	"sync"
)

// Threading. Debian's openblas-pthread can thread each sgemm itself, but
// most products here are small (one image of a convolution: 32 or 64 rows)
// and the rest of the work (im2col, pooling, batch norm, epilogues) is
// ours. So OpenBLAS is held to one thread (cblas.go) and every op splits
// its work across GOMAXPROCS goroutines instead: convolutions and pools
// over the batch, large products over rows or columns of C (pgemm), a dense
// layer's dX and dW products onto one goroutine each.
//
// Measured on the 2-vCPU AVX-512 machine, batch 128 on 28x28, -benchtime
// 3s, ms per call (inference / input gradient / Adam train step):
//
//	                                   MLP               CNN
//	goroutines, OpenBLAS 1 thread      0.75/1.54/1.68    11.5/22.8/32.7  (chosen)
//	OpenBLAS 2 threads, 1 goroutine    0.74/1.45/1.80    32.6/62.8/83.3
//	  (an earlier, quieter session)    0.54/1.16/1.42    14.6/30.4/45.4
//
// OpenBLAS's own threads win up to 20% on the MLP's few large products but
// lose 30-150% on the CNN, whose per-image products are too small for them
// (and its idle worker spins in sched_yield, competing with our goroutines
// for the two CPUs). One 128x256x784 product alone: 0.57 ms on one thread,
// 0.38-0.45 ms split over two goroutines, 0.34-0.50 ms with two OpenBLAS
// threads. Mixing the two (OpenBLAS threads for dense layers only) is not
// possible: openblas_set_num_threads is process-wide in OpenBLAS 0.3.21,
// and concurrent callers would oversubscribe the CPUs.

// threadedBLAS selects the alternative the measurements compare against:
// OpenBLAS threads every sgemm itself and convolutions run their images on
// one goroutine (the other ops still use goroutines). The environment
// variable BULWARK_BLAS_THREADED=1 selects it (register.go), for
// measurements and for models dominated by large dense layers.
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
