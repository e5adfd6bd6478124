package blas

import "fmt"

// gemm is C = alpha·op(A)·op(B) + beta·C, row-major, where op(A) is m×k and
// op(B) is k×n. It checks that every slice covers the matrix its dimensions
// and leading dimension describe before handing pointers to C, so a planning
// mistake panics here instead of corrupting memory.
func gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	checkMatrix("C", c, m, n, ldc)
	if k <= 0 {
		// Nothing to multiply: C = beta·C (what BLAS does with k = 0).
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(row)
			} else {
				for j := range row {
					row[j] *= beta
				}
			}
		}
		return
	}
	if transA {
		checkMatrix("A", a, k, m, lda)
	} else {
		checkMatrix("A", a, m, k, lda)
	}
	if transB {
		checkMatrix("B", b, n, k, ldb)
	} else {
		checkMatrix("B", b, k, n, ldb)
	}
	sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// checkMatrix panics unless s holds a rows×cols row-major matrix with
// leading dimension ld.
func checkMatrix(name string, s []float32, rows, cols, ld int) {
	if ld < cols || len(s) < (rows-1)*ld+cols {
		panic(fmt.Sprintf("blas: %s is %dx%d with leading dimension %d but has only %d values", name, rows, cols, ld, len(s)))
	}
}

// minParallelFlops is the smallest product (m·n·k multiply-adds) that pgemm
// splits across goroutines; below it the goroutine start and the smaller
// blocks cost more than the second core gains.
const minParallelFlops = 1 << 18

// pgemm is gemm with the rows (or, when there are few rows, the columns) of
// C split across workers goroutines, each calling single-threaded OpenBLAS.
// Every part of C is written by exactly one goroutine, which then runs
// epilogue (if not nil) on its block, rows [i0, i1) by columns [j0, j1),
// while the block is still in its cache.
func pgemm(workers int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int, epilogue func(i0, i1, j0, j1 int)) {
	if gemmWorkers(workers) <= 1 || m*n*k < minParallelFlops {
		gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		if epilogue != nil {
			epilogue(0, m, 0, n)
		}
		return
	}
	// Each goroutine packs its own copy of the operand it does not split,
	// so split the one with more data: rows of op(A) when A is the larger,
	// columns of op(B) otherwise.
	if m > n {
		parallelAligned(workers, m, 16, func(_, lo, hi int) {
			off := lo * lda // rows lo..hi of op(A)
			if transA {
				off = lo // op(A) rows are A's columns
			}
			gemm(transA, transB, hi-lo, n, k, alpha, a[off:], lda, b, ldb, beta, c[lo*ldc:], ldc)
			if epilogue != nil {
				epilogue(lo, hi, 0, n)
			}
		})
		return
	}
	parallelAligned(workers, n, 16, func(_, lo, hi int) {
		off := lo // columns lo..hi of op(B)
		if transB {
			off = lo * ldb // op(B) columns are B's rows
		}
		gemm(transA, transB, m, hi-lo, k, alpha, a, lda, b[off:], ldb, beta, c[lo:], ldc)
		if epilogue != nil {
			epilogue(0, m, lo, hi)
		}
	})
}
