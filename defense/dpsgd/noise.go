package dpsgd

import (
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
)

// Randomness. Every random choice of a step (its sample, and each chunk of
// its noise) comes from its own ChaCha8 generator (math/rand/v2's
// cryptographically strong generator: ChaCha with 8 rounds), keyed by:
//
//   - reproducible mode: SHA-256 of (purpose, seed, step, chunk). A step's
//     randomness depends on nothing but the seed and its index, so a run
//     resumed from a checkpoint draws exactly what the uninterrupted run
//     would have, with no generator state to save, and noise chunks can be
//     drawn in parallel without the result depending on the number of
//     goroutines. Anyone who knows the seed can recompute the noise, so the
//     guarantee then holds only against adversaries who do not.
//   - SecureNoise: 32 bytes from crypto/rand per generator, so the noise is
//     unpredictable. Floating-point Gaussian samplers have exploitable
//     low-order bits (Mironov 2012, "On Significance of the Least
//     Significant Bits for Differential Privacy"; Jin et al. 2022, "Are We
//     There Yet? Timing and Floating-Point Attacks on Differential
//     Privacy Systems"); as Opacus's secure mode, each noise value is then
//     the sum of four standard normals divided by 2 (the same
//     distribution), the mitigation Holohan and Braghin 2021 ("Secure
//     Random Sampling in Differential Privacy") propose. The samples
//     (Poisson or shuffle) are drawn from crypto/rand-keyed generators too.
//
// Standard normals come from a ziggurat (gauss.go).

type randomness struct {
	secure bool
	seed   uint64
}

// Purposes of the generators.
const (
	purposeSample = 1
	purposeNoise  = 2
)

func (r randomness) rng(purpose, step, chunk uint64) *rand.Rand {
	return rand.New(r.source(purpose, step, chunk))
}

func (r randomness) source(purpose, step, chunk uint64) *rand.ChaCha8 {
	var key [32]byte
	if r.secure {
		_, _ = crand.Read(key[:]) // never fails (Go 1.24+ crashes instead)
	} else {
		var b [40]byte
		copy(b[:8], "dpsgd/v1")
		binary.LittleEndian.PutUint64(b[8:], purpose)
		binary.LittleEndian.PutUint64(b[16:], r.seed)
		binary.LittleEndian.PutUint64(b[24:], step)
		binary.LittleEndian.PutUint64(b[32:], chunk)
		key = sha256.Sum256(b[:])
	}
	return rand.NewChaCha8(key)
}

// noiseChunk is how many coordinates one generator covers: small enough
// to balance the goroutines, large enough that keying costs nothing.
const noiseChunk = 1 << 14

// noisyMean replaces every gradient sum g (the params in the given order)
// by (g + N(0, std²)) / batch, with step's noise.
func (r randomness) noisyMean(sums [][]float32, std float64, batch int, step int) {
	type job struct {
		v     []float32
		chunk uint64
	}
	var jobs []job
	for p, v := range sums {
		for lo, c := 0, 0; lo < len(v); lo, c = lo+noiseChunk, c+1 {
			jobs = append(jobs, job{v[lo:min(len(v), lo+noiseChunk)], uint64(p)<<32 | uint64(c)})
		}
	}
	inv := 1 / float64(batch)
	var wg sync.WaitGroup
	next := make(chan job)
	for range min(runtime.GOMAXPROCS(0), len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				g := gaussian{r.source(purposeNoise, uint64(step), j.chunk)}
				for i, v := range j.v {
					z := g.next()
					if r.secure {
						z = (z + g.next() + g.next() + g.next()) / 2
					}
					j.v[i] = float32((float64(v) + std*z) * inv)
				}
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
}

// poisson returns the indices of [0, n) that Poisson sampling with rate q
// includes at step: each independently with probability q. It jumps from
// one included index to the next by a geometric gap ⌊ln U / ln(1-q)⌋ (U
// uniform in (0, 1]), which has the same distribution as n coin flips and
// costs one draw per included example.
func (r randomness) poisson(n int, q float64, step int, dst []int) []int {
	dst = dst[:0]
	if q >= 1 {
		for i := range n {
			dst = append(dst, i)
		}
		return dst
	}
	g := r.rng(purposeSample, uint64(step), 0)
	l := math.Log1p(-q)
	for i := -1; ; {
		u := 1 - g.Float64() // (0, 1]
		gap := math.Floor(math.Log(u) / l)
		if gap >= float64(n) {
			return dst
		}
		if i += int(gap) + 1; i >= n {
			return dst
		}
		dst = append(dst, i)
	}
}

// permutation is the order of epoch e (1-based) for Shuffle sampling.
func (r randomness) permutation(n, epoch int) []int {
	return r.rng(purposeSample, uint64(epoch), 1).Perm(n)
}
