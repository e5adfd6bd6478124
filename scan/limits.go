package scan

// Limits bound what a scan may spend on one file. Crossing one is reported
// as a finding (rules scan.pickle.limit and scan.archive.limit, MEDIUM): the
// part beyond the limit was not analysed, so the file cannot be called
// clean. The defaults leave room for the largest ordinary checkpoints while
// keeping the scanner's own memory to a few hundred MiB at worst.
type Limits struct {
	// MaxOps is the number of pickle opcodes executed per file.
	MaxOps int64
	// MaxMemo is the number of memo entries kept.
	MaxMemo int
	// MaxMemoIndex is the largest memo index accepted without a finding:
	// CPython's unpickler sizes its memo table by the index, so a huge one
	// is a memory bomb for the loader even when the scanner copes.
	MaxMemoIndex int64
	// MaxStack is the number of values plus marks on the pickle stack.
	MaxStack int
	// MaxNesting is the nesting depth (marks, or containers inside
	// containers) past which a pickle is reported; analysis goes on.
	MaxNesting int
	// MaxExpansion is the number of values a container may stand for once
	// shared references are expanded before it is reported as an
	// expansion ("billion laughs") attack.
	MaxExpansion int64
	// MaxStringKept is the longest string kept whole; longer ones keep a
	// prefix. MaxRetainedBytes is the total kept per file; past it, strings
	// keep short prefixes only.
	MaxStringKept    int
	MaxRetainedBytes int64
	// MaxRetainedItems is the total number of container items kept per
	// file; past it, containers only count what is added.
	MaxRetainedItems int64
	// MaxStreams is the number of concatenated pickles analysed per file.
	MaxStreams int
	// MaxEvents is the number of distinct imports and calls recorded per
	// file; later ones are still judged and counted.
	MaxEvents int

	// MaxDepth is how deep archives (and payloads embedded in files) are
	// opened inside each other.
	MaxDepth int
	// MaxEntries is the number of archive entries examined per file on disk.
	MaxEntries int
	// MaxDecompressed is the number of bytes decompressed per file on disk.
	MaxDecompressed int64
	// MaxRatio is the ratio of decompressed bytes to the size of the file on
	// disk past which the file is reported as a decompression bomb: one
	// layer of deflate cannot exceed about 1032:1, so much larger ratios
	// come from nested or overlapping archives.
	MaxRatio int64
	// MaxInMemory is the size past which decompressed entries are spooled
	// to a temporary file instead of memory.
	MaxInMemory int64
	// MaxConfig is the largest JSON document (Keras configs, NumPy headers)
	// parsed.
	MaxConfig int64
}

// DefaultLimits returns the limits used when Options.Limits is zero.
func DefaultLimits() Limits {
	return Limits{
		MaxOps:           50_000_000,
		MaxMemo:          1_000_000,
		MaxMemoIndex:     1 << 24,
		MaxStack:         1_000_000,
		MaxNesting:       1000,
		MaxExpansion:     100_000_000,
		MaxStringKept:    1 << 20,
		MaxRetainedBytes: 32 << 20,
		MaxRetainedItems: 2_000_000,
		MaxStreams:       64,
		MaxEvents:        10_000,

		MaxDepth:        6,
		MaxEntries:      100_000,
		MaxDecompressed: 2 << 30,
		MaxRatio:        10_000,
		MaxInMemory:     64 << 20,
		MaxConfig:       16 << 20,
	}
}

// withDefaults fills the zero fields of l from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	set64 := func(v *int64, def int64) {
		if *v <= 0 {
			*v = def
		}
	}
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set64(&l.MaxOps, d.MaxOps)
	set(&l.MaxMemo, d.MaxMemo)
	set64(&l.MaxMemoIndex, d.MaxMemoIndex)
	set(&l.MaxStack, d.MaxStack)
	set(&l.MaxNesting, d.MaxNesting)
	set64(&l.MaxExpansion, d.MaxExpansion)
	set(&l.MaxStringKept, d.MaxStringKept)
	set64(&l.MaxRetainedBytes, d.MaxRetainedBytes)
	set64(&l.MaxRetainedItems, d.MaxRetainedItems)
	set(&l.MaxStreams, d.MaxStreams)
	set(&l.MaxEvents, d.MaxEvents)
	set(&l.MaxDepth, d.MaxDepth)
	set(&l.MaxEntries, d.MaxEntries)
	set64(&l.MaxDecompressed, d.MaxDecompressed)
	set64(&l.MaxRatio, d.MaxRatio)
	set64(&l.MaxInMemory, d.MaxInMemory)
	set64(&l.MaxConfig, d.MaxConfig)
	return l
}
