package model

// The engines a loaded model can run on. GoMLX is built into
// internal/engine; the BLAS engine registers itself when linked.
import _ "github.com/bulwark-sec/bulwark/internal/engine/blas"
