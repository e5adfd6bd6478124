//go:build !cgo

package blas

// Without cgo there is no OpenBLAS: a plain Go product keeps the package
// building and correct (slowly), and Available reports false so callers
// can prefer the GoMLX engine.

// Available reports whether the engine is backed by OpenBLAS.
func Available() bool { return false }

func setBLASThreads(int) {}

func blasThreads() int { return 1 }

func blasConfig() string { return "pure Go (no cgo)" }

// sgemm is C = alpha·op(A)·op(B) + beta·C in row-major order.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	row := make([]float32, n)
	for i := range m {
		clear(row)
		for p := range k {
			var av float32
			if transA {
				av = a[p*lda+i]
			} else {
				av = a[i*lda+p]
			}
			if av == 0 {
				continue
			}
			if transB {
				for j := range row {
					row[j] += av * b[j*ldb+p]
				}
			} else {
				brow := b[p*ldb : p*ldb+n]
				for j, bv := range brow {
					row[j] += av * bv
				}
			}
		}
		crow := c[i*ldc : i*ldc+n]
		for j := range crow {
			if beta == 0 {
				crow[j] = alpha * row[j]
			} else {
				crow[j] = alpha*row[j] + beta*crow[j]
			}
		}
	}
}
