package scan

import (
	"strings"
	"unicode"
)

// The decision on a callable is by allowlist: a pickle may only name what
// ordinary PyTorch, NumPy and collections pickles name (SAFE); classes from
// a few well-known ML libraries are LOW (common, but the library's own code
// then runs on load); everything else is at least MEDIUM, and a denylist
// raises what is known to run code, reach the file system or the network,
// or reach Python internals to HIGH or CRITICAL. A blocklist alone is what
// the bypasses of other scanners exploit: the denylist here only decides how
// loud a finding is, never whether there is one.

// verdict is the judgement on one callable path.
type verdict struct {
	sev    Severity
	reason string
	// rule overrides the rule derived from the severity.
	rule string
}

// policy classifies dotted callable paths.
type policy struct {
	allowExact  map[string]bool
	allowPrefix []string
}

func newPolicy(allow []string) *policy {
	p := &policy{allowExact: map[string]bool{}}
	for _, a := range allow {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if strings.HasSuffix(a, ".*") {
			p.allowPrefix = append(p.allowPrefix, normalizePath(strings.TrimSuffix(a, ".*"))+".")
		} else {
			p.allowExact[normalizePath(a)] = true
		}
	}
	return p
}

// moduleAliases maps the first component of a module path to the module it
// stands for: Python 2 names that pickle's compatibility layer renames,
// and C accelerator or OS-specific modules that are the same as a public one
// (posix.system is os.system).
var moduleAliases = map[string]string{
	"__builtin__":      "builtins",
	"exceptions":       "builtins",
	"copy_reg":         "copyreg",
	"cPickle":          "pickle",
	"_pickle":          "pickle",
	"posix":            "os",
	"nt":               "os",
	"posixpath":        "os.path",
	"ntpath":           "os.path",
	"commands":         "subprocess",
	"_posixsubprocess": "subprocess",
	"_operator":        "operator",
	"_functools":       "functools",
	"_io":              "io",
	"cStringIO":        "io",
	"StringIO":         "io",
	"_socket":          "socket",
	"_ctypes":          "ctypes",
	"_collections":     "collections",
	"urllib2":          "urllib.request",
	"httplib":          "http.client",
	"thread":           "_thread",
	"Queue":            "queue",
	"SocketServer":     "socketserver",
	"_asyncio":         "asyncio",
	"_imp":             "imp",
	"_marshal":         "marshal",
}

// builtinAliases renames Python 2 builtins to what they are in Python 3.
var builtinAliases = map[string]string{
	"unicode":    "str",
	"basestring": "str",
	"long":       "int",
	"xrange":     "range",
	"unichr":     "chr",
	"raw_input":  "input",
	"execfile":   "exec",
	"file":       "open",
	"reduce":     "functools.reduce",
	"intern":     "sys.intern",
	"apply":      "apply",
}

// normalizePath rewrites a dotted path to the module it stands for.
func normalizePath(path string) string {
	first, rest, _ := strings.Cut(path, ".")
	if a, ok := moduleAliases[first]; ok {
		first = a
	}
	if first == "builtins" && rest != "" {
		name, tail, hasTail := strings.Cut(rest, ".")
		if a, ok := builtinAliases[name]; ok {
			if strings.Contains(a, ".") {
				if hasTail {
					return a + "." + tail
				}
				return a
			}
			name = a
		}
		if hasTail {
			return "builtins." + name + "." + tail
		}
		return "builtins." + name
	}
	if rest == "" {
		return first
	}
	return first + "." + rest
}

// splitPath splits "a.b.c" into module "a.b" and name "c".
func splitPath(path string) (string, string) {
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return "", path
	}
	return path[:i], path[i+1:]
}

// dunderReach are attribute names that lead from any object to Python's
// internals (globals of a function, the builtins, every class in the
// process, frames): no model needs them, and with them any import is as
// good as os.system.
var dunderReach = set(
	"__builtins__", "__globals__", "__import__", "__subclasses__", "__code__",
	"__class__", "__base__", "__bases__", "__mro__", "__dict__",
	"__getattribute__", "__getattr__", "__setattr__", "__delattr__",
	"__func__", "__self__", "__closure__", "__loader__", "__spec__",
	"__reduce__", "__reduce_ex__", "__init_subclass__",
	"func_globals", "func_code", "f_globals", "f_locals", "f_back",
	"gi_frame", "cr_frame", "ag_frame", "tb_frame", "co_code",
)

// reachModules are modules that, met as an attribute of another module
// (torch.serialization.os, numpy.testing._private.utils.subprocess), mean
// the path reaches them through a re-export.
var reachModules = set(
	"os", "posix", "nt", "sys", "subprocess", "builtins", "__builtin__",
	"importlib", "ctypes", "pickle", "_pickle", "cPickle", "marshal",
	"shutil", "socket", "pty", "runpy", "commands", "code", "webbrowser",
)

// reachAttrs are attribute names of process, code and file-system functions;
// any path ending in or passing through one is treated as calling it.
var reachAttrs = set(
	"system", "popen", "popen2", "popen3", "popen4", "Popen",
	"spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe",
	"execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
	"fork", "forkpty", "posix_spawn", "posix_spawnp", "check_output", "check_call",
	"getoutput", "getstatusoutput", "startfile", "run_path", "run_module",
	"_run_code", "_run_module_code", "rmtree", "eval", "exec", "execfile",
	"compile", "__import__", "import_module", "runstring", "exec_command",
	"load_library", "CDLL", "PyDLL", "WinDLL", "LoadLibrary", "cdll", "windll",
	"urlopen", "urlretrieve", "getattr", "setattr", "delattr", "globals",
	"locals", "vars", "breakpoint", "interact",
)

// criticalModules run code, load code or reach the process, whatever the
// function: the whole module tree is CRITICAL.
var criticalModules = map[string]string{
	"os":                          "the os module runs commands and touches the file system",
	"subprocess":                  "subprocess runs commands",
	"sys":                         "sys exposes the interpreter (modules, hooks, the path)",
	"importlib":                   "importlib imports arbitrary modules",
	"imp":                         "imp imports arbitrary modules",
	"pkgutil":                     "pkgutil resolves and imports arbitrary names",
	"zipimport":                   "zipimport imports code from archives",
	"runpy":                       "runpy runs Python files and modules",
	"ctypes":                      "ctypes calls native code",
	"cffi":                        "cffi calls native code",
	"pickle":                      "pickle loads a second pickle, which runs arbitrary code",
	"marshal":                     "marshal loads code objects",
	"shutil":                      "shutil copies, moves and deletes files",
	"socket":                      "socket opens network connections",
	"webbrowser":                  "webbrowser opens URLs and runs the browser",
	"code":                        "code runs Python source",
	"codeop":                      "codeop compiles Python source",
	"pty":                         "pty spawns processes",
	"asyncio":                     "asyncio runs subprocesses",
	"multiprocessing":             "multiprocessing starts processes",
	"pdb":                         "pdb runs Python source",
	"bdb":                         "bdb runs Python source",
	"timeit":                      "timeit executes Python source strings",
	"profile":                     "profile runs Python source strings",
	"cProfile":                    "cProfile runs Python source strings",
	"trace":                       "trace runs Python source",
	"pydoc":                       "pydoc runs pagers through the shell",
	"distutils":                   "distutils spawns compilers and commands",
	"setuptools":                  "setuptools runs build commands",
	"pip":                         "pip installs and runs packages",
	"ensurepip":                   "ensurepip runs pip",
	"IPython":                     "IPython runs shell commands",
	"dill._dill._create_code":     "dill's code helpers build code objects",
	"dill._dill._create_function": "dill's code helpers build functions",
	"dill._dill._create_lambda":   "dill's code helpers build functions",
	"dill._dill._eval_repr":       "dill evaluates source",
	"dill._dill._import_module":   "dill imports arbitrary modules",
	"dill._dill._get_attr":        "dill's getattr reaches any attribute",
	"dill._dill._create_cell":     "dill's code helpers build closures",
	"torch.hub":                   "torch.hub downloads and runs code",
	"torch.utils.cpp_extension":   "torch.utils.cpp_extension compiles and loads native code",
	"numpy.f2py":                  "numpy.f2py compiles and runs code",
	"numpy.distutils":             "numpy.distutils runs commands",
	"numpy.ctypeslib":             "numpy.ctypeslib loads native libraries",
}

// highModules reach the network, other processes' resources or files.
var highModules = map[string]string{
	"http":          "network access",
	"urllib":        "network access",
	"urllib3":       "network access",
	"requests":      "network access",
	"aiohttp":       "network access",
	"httpx":         "network access",
	"ftplib":        "network access",
	"smtplib":       "network access",
	"telnetlib":     "network access",
	"poplib":        "network access",
	"imaplib":       "network access",
	"nntplib":       "network access",
	"xmlrpc":        "network access",
	"socketserver":  "network access",
	"ssl":           "network access",
	"paramiko":      "network access",
	"_thread":       "starts threads",
	"threading":     "starts threads",
	"signal":        "installs signal handlers",
	"gc":            "gc reaches every object in the process",
	"inspect":       "inspect reaches frames and source",
	"shelve":        "shelve opens files and unpickles them",
	"dbm":           "dbm opens files",
	"tarfile":       "tarfile extracts archives to disk",
	"zipfile":       "zipfile extracts archives to disk",
	"mmap":          "mmap maps files",
	"platform":      "platform runs commands",
	"torch.package": "torch.package imports code from a package",
	"tempfile":      "tempfile creates files",
}

// exactVerdicts judge single callables; safe ones are the allowlist.
var exactVerdicts = map[string]verdict{}

func init() {
	safe := func(reason string, paths ...string) {
		for _, p := range paths {
			exactVerdicts[p] = verdict{sev: SeveritySafe, reason: reason}
		}
	}
	bad := func(sev Severity, reason string, paths ...string) {
		for _, p := range paths {
			exactVerdicts[p] = verdict{sev: sev, reason: reason}
		}
	}
	safe("builtin type holding data",
		"builtins.set", "builtins.frozenset", "builtins.bytearray", "builtins.bytes",
		"builtins.complex", "builtins.slice", "builtins.range", "builtins.list",
		"builtins.dict", "builtins.tuple", "builtins.int", "builtins.float",
		"builtins.str", "builtins.bool", "builtins.object", "builtins.Ellipsis",
		"builtins.NotImplemented", "builtins.NoneType")
	safe("collections container",
		"collections.OrderedDict", "collections.defaultdict", "collections.deque",
		"collections.Counter", "collections.ChainMap")
	safe("copyreg reconstructor used by ordinary pickles of objects",
		"copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__")
	safe("text-to-bytes conversion used by protocol 0-2 pickles of bytes",
		"_codecs.encode", "codecs.encode")
	safe("standard library value type",
		"datetime.datetime", "datetime.date", "datetime.time", "datetime.timedelta",
		"datetime.timezone", "decimal.Decimal", "fractions.Fraction", "uuid.UUID",
		"argparse.Namespace", "types.SimpleNamespace", "pathlib.Path",
		"pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePath",
		"pathlib.PurePosixPath", "pathlib.PureWindowsPath", "io.BytesIO",
		"io.StringIO", "array.array", "array._array_reconstructor")
	safe("NumPy array reconstruction",
		"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
		"numpy.ndarray", "numpy.dtype", "numpy.core.multiarray.scalar",
		"numpy._core.multiarray.scalar", "numpy.core.numeric._frombuffer",
		"numpy._core.numeric._frombuffer", "numpy.ma.core._mareconstruct",
		"numpy.ma.core.MaskedArray", "numpy.random._pickle.__randomstate_ctor",
		"numpy.random._pickle.__generator_ctor", "numpy.random._pickle.__bit_generator_ctor",
		"numpy.random.mtrand.RandomState", "numpy.random._mt19937.MT19937",
		"numpy.random._pcg64.PCG64", "numpy.random._philox.Philox",
		"numpy.random._sfc64.SFC64", "numpy.random._generator.Generator",
		"numpy.random.bit_generator.SeedSequence", "numpy.core._multiarray_umath._reconstruct",
		"numpy._core._multiarray_umath._reconstruct")
	safe("PyTorch tensor reconstruction",
		"torch.Size", "torch.device", "torch.Tensor", "torch.dtype",
		"torch.nn.parameter.Parameter", "torch.nn.parameter.Buffer",
		"torch.nn.parameter.UninitializedParameter", "torch.nn.parameter.UninitializedBuffer",
		"torch._tensor._rebuild_from_type", "torch._tensor._rebuild_from_type_v2",
		"torch.torch_version.TorchVersion", "torch.serialization._get_layout",
		"torch.strided", "torch.sparse_coo", "torch.sparse_csr", "torch.sparse_csc",
		"torch.sparse_bsr", "torch.sparse_bsc", "torch._mkldnn",
		"torch.contiguous_format", "torch.channels_last", "torch.channels_last_3d",
		"torch.preserve_format", "torch.per_tensor_affine", "torch.per_channel_affine",
		"torch.per_tensor_symmetric", "torch.per_channel_symmetric",
		"torch.per_channel_affine_float_qparams")
	// The bytes handed to _load_from_bytes are a torch.save file; the
	// scanner analyses them in turn (Payload), so the call itself is safe.
	safe("PyTorch storage pickled by plain pickle (its bytes are scanned too)",
		"torch.storage._load_from_bytes")
	for _, d := range []string{"float32", "float", "float64", "double", "float16", "half",
		"bfloat16", "complex32", "chalf", "complex64", "cfloat", "complex128", "cdouble",
		"uint8", "int8", "int16", "short", "int32", "int", "int64", "long", "bool",
		"uint16", "uint32", "uint64", "qint8", "quint8", "qint32", "quint4x2", "quint2x4",
		"float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"} {
		safe("PyTorch dtype", "torch."+d)
	}
	// TorchScript archives (torch.jit.save) are read by TorchScript's C++
	// unpickler, which accepts only these helpers, tensor rebuilding and
	// the __torch__ classes compiled from the archive's code/ folder.
	safe("TorchScript list and type helpers",
		"torch.jit._pickle.build_intlist", "torch.jit._pickle.build_tensorlist",
		"torch.jit._pickle.build_doublelist", "torch.jit._pickle.build_boollist",
		"torch.jit._pickle.build_complexlist", "torch.jit._pickle.restore_type_tag")
	safe("joblib's array wrapper", "joblib.numpy_pickle.NumpyArrayWrapper",
		"joblib.numpy_pickle.NDArrayWrapper", "joblib.numpy_pickle.ZNDArrayWrapper")

	bad(SeverityCritical, "runs or compiles Python code",
		"builtins.eval", "builtins.exec", "builtins.compile", "builtins.apply",
		"builtins.__build_class__")
	bad(SeverityCritical, "reaches any attribute of any object, the usual way to get from an allowed import to os.system",
		"builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.vars",
		"builtins.globals", "builtins.locals", "builtins.__import__")
	bad(SeverityCritical, "opens files", "builtins.open", "io.open", "io.FileIO", "io.open_code", "codecs.open")
	bad(SeverityCritical, "starts a debugger or reads the terminal",
		"builtins.breakpoint", "builtins.input")
	bad(SeverityCritical, "builds a callable that reaches any attribute or method",
		"operator.attrgetter", "operator.methodcaller")
	bad(SeverityCritical, "builds code objects or functions from raw parts",
		"types.CodeType", "types.FunctionType", "types.LambdaType")
	bad(SeverityHigh, "binds arbitrary functions to objects", "types.MethodType")
	bad(SeverityCritical, "loads a pickle, which runs arbitrary code",
		"torch.load", "torch.serialization.load", "numpy.loads", "numpy.core.numeric.loads",
		"joblib.load", "joblib.numpy_pickle.load", "pandas.read_pickle",
		"cloudpickle.loads", "cloudpickle.load", "dill.loads", "dill.load", "yaml.load",
		"yaml.unsafe_load", "yaml.full_load", "torch.jit.load", "keras.models.load_model")
	bad(SeverityHigh, "reads a file; with allow_pickle it runs a pickle", "numpy.load")
	bad(SeverityHigh, "reads or writes files",
		"numpy.fromfile", "numpy.memmap", "numpy.save", "numpy.savez", "numpy.savez_compressed",
		"numpy.savetxt", "numpy.loadtxt", "numpy.genfromtxt", "numpy.lib.format.open_memmap",
		"torch.save", "torch.serialization.save", "torch.from_file")
	bad(SeverityMedium, "calls its first argument with the rest; judged by what it wraps", "functools.partial")
}

// mlLibraries are libraries whose classes are LOW rather than MEDIUM: their
// pickles are common (scikit-learn models are pickles) and the classes come
// from a library the loader installed, but unpickling still runs the
// library's code, so such files should come from a trusted source. Their
// functions (lowercase names) stay MEDIUM: a function is a possible gadget.
var mlLibraries = set("sklearn", "scipy", "pandas", "xgboost", "lightgbm", "catboost", "statsmodels")

// classify judges the callable at path.
func (p *policy) classify(path string) verdict {
	path = normalizePath(path)
	comps := strings.Split(path, ".")
	for _, c := range comps {
		if dunderReach[c] {
			return verdict{sev: SeverityCritical, reason: "reaches Python internals through " + c}
		}
	}
	if p.allowExact[path] {
		return verdict{sev: SeveritySafe, reason: "allowed by the user"}
	}
	for _, pre := range p.allowPrefix {
		if strings.HasPrefix(path, pre) {
			return verdict{sev: SeveritySafe, reason: "allowed by the user"}
		}
	}
	if v, ok := exactVerdicts[path]; ok {
		return v
	}
	// A module tree on the denylist decides for everything under it.
	for i := len(comps); i >= 1; i-- {
		prefix := strings.Join(comps[:i], ".")
		if r, ok := criticalModules[prefix]; ok {
			return verdict{sev: SeverityCritical, reason: r}
		}
		if r, ok := highModules[prefix]; ok {
			return verdict{sev: SeverityHigh, reason: r}
		}
	}
	for _, c := range comps[1:] {
		if reachModules[c] {
			return verdict{sev: SeverityCritical, reason: "reaches the " + c + " module through another module's attribute"}
		}
		if reachAttrs[c] {
			return verdict{sev: SeverityCritical, reason: "names " + c + ", a function that runs code, spawns processes or reaches arbitrary attributes"}
		}
	}
	if isSafeFamily(comps) {
		return verdict{sev: SeveritySafe, reason: "PyTorch tensor reconstruction"}
	}
	if comps[0] == "__torch__" && len(comps) > 1 {
		// Not importable from Python (pickle.load fails on it); TorchScript
		// resolves it to a class compiled from the archive's own code.
		return verdict{sev: SeveritySafe, reason: "TorchScript class from the archive's code/"}
	}
	if len(comps) >= 2 && mlLibraries[comps[0]] {
		last := comps[len(comps)-1]
		if (last != "" && unicode.IsUpper(rune(last[0]))) || (comps[0] == "scipy" && comps[1] == "sparse") {
			return verdict{sev: SeverityLow, reason: "class from " + comps[0] + ": common in model pickles, but loading runs the library's code, so the file must come from a trusted source"}
		}
	}
	if comps[0] == "builtins" {
		return verdict{sev: SeverityMedium, reason: "builtin not on the allowlist"}
	}
	return verdict{sev: SeverityMedium, reason: "not on the allowlist of globals that ordinary model pickles use"}
}

// isSafeFamily accepts the families of PyTorch names that are too many to
// list: storage classes, the _rebuild_ functions and the classes of
// torch.nn.modules (whole-model pickles name them).
func isSafeFamily(comps []string) bool {
	if comps[0] != "torch" || len(comps) < 2 {
		return false
	}
	last := comps[len(comps)-1]
	switch {
	case len(comps) == 2 && strings.HasSuffix(last, "Storage") && isIdent(last):
		return true // torch.FloatStorage, torch.UntypedStorage
	case len(comps) == 3 && (comps[1] == "cuda" || comps[1] == "storage") && strings.HasSuffix(last, "Storage") && isIdent(last):
		return true // torch.cuda.FloatStorage, torch.storage.TypedStorage
	case len(comps) == 3 && comps[1] == "_utils" && strings.HasPrefix(last, "_rebuild_"):
		return true
	case len(comps) >= 4 && comps[1] == "nn" && comps[2] == "modules" && last != "" && unicode.IsUpper(rune(last[0])):
		return true
	}
	return false
}

func isIdent(s string) bool {
	for _, r := range s {
		if !(r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return false
		}
	}
	return s != ""
}

func set(items ...string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, s := range items {
		m[s] = true
	}
	return m
}
