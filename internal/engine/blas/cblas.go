//go:build cgo

package blas

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import "unsafe"

// This is the only file that uses cgo: every call into OpenBLAS goes through
// sgemm and setBLASThreads below, so a pure-Go build needs only replacements
// for these two (see purego.go).

func init() {
	// OpenBLAS threads itself; we split the work across goroutines instead
	// and keep each sgemm on the goroutine's own thread (see parallel.go for
	// the measurements behind this choice).
	setBLASThreads(1)
}

// Available reports whether the engine is backed by OpenBLAS.
func Available() bool { return true }

// setBLASThreads sets how many threads OpenBLAS may use inside one call.
func setBLASThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// blasThreads is the number of threads OpenBLAS uses inside one call.
func blasThreads() int { return int(C.openblas_get_num_threads()) }

// blasConfig describes the OpenBLAS build and the kernel it selected.
func blasConfig() string {
	return C.GoString(C.openblas_get_config()) + " core=" + C.GoString(C.openblas_get_corename())
}

// sgemm is C = alpha·op(A)·op(B) + beta·C in row-major order, where op
// transposes when asked. The caller (gemm in gemm.go) has checked that the
// slices are long enough for the dimensions and leading dimensions.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	var ta, tb C.enum_CBLAS_TRANSPOSE = C.CblasNoTrans, C.CblasNoTrans
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}
