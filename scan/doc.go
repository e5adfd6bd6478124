// Package scan looks for malicious and malformed model files without loading
// them.
//
// A model file is code: unpickling runs whatever callables the pickle names,
// a Keras Lambda layer carries bytecode, an ONNX tensor can point its data at
// a file outside the model folder. Scan reads every common model format and
// reports what loading the file would do or where it breaks the format:
//
//   - Pickles (raw, inside PyTorch zips and legacy files, NumPy object
//     arrays, joblib/dill files) go through a pickle virtual machine that
//     follows every opcode of protocols 0 to 5 symbolically: nothing is
//     imported or called, but every callable that loading would import or
//     call is resolved to "module.name" (through the memo, STACK_GLOBAL,
//     getattr chains, partials...) and judged against an allowlist.
//   - Keras (.keras, .h5), TensorFlow SavedModel, ONNX, safetensors, GGUF and
//     NumPy files are checked for the constructs of each format that run code
//     or touch files, and for structural violations.
//   - Archives (zip, tar, gzip, bzip2) are opened recursively within limits on
//     depth, entry count and decompressed size.
//
// Two rules hold throughout. A file that could not be parsed is reported as
// such (rule scan.unparseable) and never as clean. And the scanner's own
// memory and time stay bounded whatever the input: files are read through
// io.ReaderAt windows, never whole, and every structure grown from the input
// has a limit whose crossing is itself a finding (see Limits).
package scan
