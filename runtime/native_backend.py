"""The native backend: runs an exported ``.c`` model compiled by the system C compiler.

No inference engine at all: the generated C99 file (``edgelstm export --format c``) is
compiled with ``$CC`` (or ``cc`` / ``gcc`` / ``clang`` on PATH) into a shared library,
cached in the user cache directory under a key made of the code, the compiler and the
flags (so it compiles once per model and machine), and loaded with ctypes.

Before anything is compiled, the file is checked against the description it carries:
the sha256 of ``NAME.h`` and of the code must be what the exporter recorded, and the
``.c.json`` beside it (if any) must describe the same model. A file edited by hand is
refused: compiling it would run code nobody verified against the reference.

Many streams step in one call: a small generated wrapper (``edgelstm_native_steps``)
copies each stream's state from the flat ``(streams, units)`` arrays of the runtime
into a ``NAME_state_t``, calls ``NAME_step`` and copies the new state out. An int16x8
model keeps its state as int16 ``q`` with ``frac_bits`` f (from its description): the
wrapper hands it to the runtime as the float ``q * 2^-f`` and takes it back rounded, which
is exact, so a state snapshot restores bit-identically.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgelstm.core.artifact import StateIO, StepInterface, read_sidecar
from edgelstm.core.errors import UserError, one_line
from edgelstm.runtime.crash_probe import killed_by

#: Start of the description comment that ends every generated ``.c`` file.
DESCRIPTION_MARKER = "/* edgelstm-description\n"
DESCRIPTION_END = "*/\n"
#: Flags of the cached build; EDGELSTM_NATIVE_CFLAGS replaces them (e.g. "-O3 -march=native").
DEFAULT_CFLAGS = "-O2"
CFLAGS_ENV = "EDGELSTM_NATIVE_CFLAGS"
CACHE_ENV = "EDGELSTM_CACHE_DIR"
#: Seconds a compile may take before it counts as hung.
COMPILE_TIMEOUT = 300
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def source_hash(header: str, code: str) -> str:
    """sha256 of the header and the code of a ``.c`` (everything above its description)."""
    h = hashlib.sha256()
    h.update(header.encode())
    h.update(b"\0")
    h.update(code.encode())
    return h.hexdigest()


def split_source(text: str) -> tuple[str, dict | None]:
    """(code, embedded description or None) of a generated ``.c`` file's text."""
    at = text.rfind("\n" + DESCRIPTION_MARKER)
    if at < 0:
        return text, None
    rest = text[at + 1 + len(DESCRIPTION_MARKER):]
    if not rest.endswith(DESCRIPTION_END):
        return text, None
    try:
        desc = json.loads(rest[:-len(DESCRIPTION_END)])
    except ValueError:
        return text, None
    return text[:at], desc if isinstance(desc, dict) else None


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "edgelstm" / "native"


def compiler() -> list[str]:
    """The C compiler command: $CC, else cc, gcc or clang on PATH; UserError if none."""
    if os.environ.get("CC"):
        cmd = shlex.split(os.environ["CC"])
        if cmd and shutil.which(cmd[0]):
            return cmd
        raise UserError(f"$CC is {os.environ['CC']!r}, which is not an executable on PATH")
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return [name]
    raise UserError("no C compiler found to build the native backend: install gcc or clang "
                    "(Debian/Raspberry Pi OS: apt install gcc) or set $CC")


def compiler_version() -> str:
    """The first line of the C compiler's ``--version``: the native backend's engine version."""
    path_and_version = _compiler_identity(tuple(compiler())).splitlines()
    return path_and_version[1] if len(path_and_version) > 1 else path_and_version[0]


@functools.lru_cache(maxsize=None)
def _compiler_identity(cmd: tuple[str, ...]) -> str:
    try:
        out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60)
        return (shutil.which(cmd[0]) or cmd[0]) + "\n" + out.stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise UserError(f"the C compiler {' '.join(cmd)!r} does not run ({one_line(exc)})") from None


def read_verified(path: Path) -> tuple[str, str, dict]:
    """(header text, code, description) of a generated ``.c``; UserError unless they
    are exactly what edgelstm exported."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a C source exported by edgelstm (not UTF-8 text)") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    code, desc = split_source(text)
    c = desc.get("c") if desc else None
    if not isinstance(c, dict) or desc.get("format") != "c":
        raise UserError(f"{path}: not a C source exported by edgelstm (its description comment is missing "
                        "or damaged); export it with `edgelstm export --format c`")
    name, header_name = c.get("name"), c.get("header")
    if not (isinstance(name, str) and _IDENT.fullmatch(name) and header_name == f"{name}.h"):
        raise UserError(f"{path}: its description names no valid C model name")
    header_path = path.with_name(header_name)
    try:
        header = header_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: its header {header_name} is not beside it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{header_path}: cannot read ({one_line(exc)})") from None
    if source_hash(header, code) != c.get("source_sha256"):
        raise UserError(f"{path}: the code or {header_name} was changed after export (sha256 differs from the "
                        "one recorded in its description); refusing to compile it; export it again")
    sidecar = read_sidecar(path)
    if sidecar is not None:
        for key in ("spec_hash", "quantize"):
            if sidecar.get(key) != desc.get(key):
                raise UserError(f"{path}: its {path.name}.json describes another model ({key} differs)")
        if (sidecar.get("c") or {}).get("source_sha256") != c.get("source_sha256"):
            raise UserError(f"{path}: its {path.name}.json describes another build (source_sha256 differs)")
    return header, code, desc


def _state_copies(state: StateIO, frac: int | None) -> tuple[str, str, str]:
    """C that loads one state field from the flat float array, stores it back, and the type.

    The wrapper's array parameters are named for the step graph's state input and output."""
    s, out, size = state.name, state.output, state.size
    if frac is None:
        return (f"        memcpy(s.{s}, {s} + (size_t)k * {size}, sizeof s.{s});\n",
                f"        memcpy({out} + (size_t)k * {size}, s.{s}, sizeof s.{s});\n", "float")
    one = float(2 ** frac)
    load = (f"        for (int j = 0; j < {size}; ++j) {{ /* float -> int16 Q.{frac}: rounded, saturated, NaN 0 */\n"
            f"            const float q = {s}[(size_t)k * {size} + (size_t)j] * {one!r}f;\n"
            f"            s.{s}[j] = (int16_t)(q != q ? 0.0f : q >= 32767.0f ? 32767.0f :\n"
            f"                                 q <= -32768.0f ? -32768.0f : q >= 0.0f ? q + 0.5f : q - 0.5f);\n"
            f"        }}\n")
    store = (f"        for (int j = 0; j < {size}; ++j)\n"
             f"            {out}[(size_t)k * {size} + (size_t)j] = (float)s.{s}[j] / {one!r}f;\n")
    return load, store, "int16_t"


def _wrapper(name: str, states: tuple[StateIO, ...], fracs: dict | None = None) -> str:
    """C that steps n streams over flat (n, size) arrays, and reports the compiled sizes.
    ``fracs``: state name -> fractional bits of an int16 state (int16x8), else float."""
    fracs = fracs or {}
    params = "".join(f", const float *{s.name}" for s in states) + "".join(f", float *{s.output}" for s in states)
    copies = [_state_copies(s, fracs.get(s.name)) for s in states]
    load = "".join(c[0] for c in copies)
    store = "".join(c[1] for c in copies)
    sizes = "".join(f"    sizes[{2 + n}] = (int32_t)(sizeof(((const {name}_state_t *)0)->{s.name}) / sizeof({c[2]}));\n"
                    for n, (s, c) in enumerate(zip(states, copies)))
    return f"""#include "{name}.c"

void edgelstm_native_steps(int32_t n, const float *x, float *y{params});
void edgelstm_native_sizes(int32_t *sizes);

void edgelstm_native_steps(int32_t n, const float *x, float *y{params})
{{
    for (int32_t k = 0; k < n; ++k) {{
        {name}_state_t s;
{load}        {name}_step(&s, x + (size_t)k * {name}_INPUTS, y + (size_t)k * {name}_OUTPUTS);
{store}    }}
}}

void edgelstm_native_sizes(int32_t *sizes)
{{
    sizes[0] = {name}_INPUTS;
    sizes[1] = {name}_OUTPUTS;
{sizes}}}
"""


def build(path: Path, header: str, code: str, desc: dict, states: tuple[StateIO, ...]) -> Path:
    """The shared library of a verified ``.c``: from the cache, or compiled into it."""
    name = desc["c"]["name"]
    for state in (n for s in states for n in (s.name, s.output)):
        if not _IDENT.fullmatch(state):
            raise UserError(f"{path}: its description names a state {state!r} that is not a C identifier")
    cmd = compiler()
    flags = shlex.split(os.environ.get(CFLAGS_ENV, DEFAULT_CFLAGS))
    fracs = {f.get("name"): f.get("frac_bits") for f in desc["c"].get("state_fields") or []
             if isinstance(f, dict) and f.get("dtype") == "int16"}
    if not all(isinstance(v, int) and 0 <= v <= 16 for v in fracs.values()):
        raise UserError(f"{path}: its description gives an int16 state format out of range")
    wrapper = _wrapper(name, states, fracs)
    key = hashlib.sha256("\0".join([header, code, wrapper, _compiler_identity(tuple(cmd)), *flags]).encode())
    root = cache_dir()
    lib = root / f"{name}-{key.hexdigest()[:32]}.so"
    if lib.is_file():
        return lib
    try:
        root.mkdir(parents=True, exist_ok=True)
        build_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
    except OSError as exc:
        raise UserError(f"cannot create the native build cache {root} ({exc.strerror or exc}); "
                        f"set ${CACHE_ENV} to a writable directory") from None
    try:
        (build_dir / f"{name}.h").write_text(header)
        (build_dir / f"{name}.c").write_text(code)
        (build_dir / "steps.c").write_text(wrapper)
        out = build_dir / "model.so"
        argv = [*cmd, *flags, "-std=c99", "-fPIC", "-shared", "-o", str(out), "steps.c", "-lm"]
        try:
            done = subprocess.run(argv, cwd=build_dir, capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise UserError(f"{path}: the C compiler took more than {COMPILE_TIMEOUT} s") from None
        except OSError as exc:
            raise UserError(f"{path}: cannot run the C compiler {cmd[0]!r} ({one_line(exc)})") from None
        if done.returncode != 0 or not out.is_file():
            log = root / f"{name}-{key.hexdigest()[:32]}.log"
            log.write_text(" ".join(argv) + "\n\n" + done.stdout + done.stderr)
            status = killed_by(done.returncode) or f"exit status {done.returncode}"
            first = next((ln for ln in done.stderr.splitlines() if "error" in ln), None) or \
                (done.stderr.strip().splitlines() or [status])[0]
            raise UserError(f"{path}: the C compiler failed: {first.strip()} (full log: {log})")
        out.replace(lib)  # atomic: a concurrent build of the same key writes the same library
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return lib


class NativeBackend:
    name = "native"
    suffixes = (".c",)

    def __init__(self, path: str | Path, threads: int | None = None, batch: int = 1):
        self.path = Path(path)
        header, code, desc = read_verified(self.path)
        self.description = desc
        io = self.interface = StepInterface.from_description(desc, self.path)
        self.input_size, self.output_size, self.state_sizes = io.input_size, io.output_size, io.state_sizes
        self.library = build(self.path, header, code, desc, io.states)
        try:
            lib = ctypes.CDLL(str(self.library))
        except OSError as exc:
            raise UserError(f"{self.path}: cannot load the compiled model {self.library} ({one_line(exc)})") from None
        sizes = (ctypes.c_int32 * (2 + len(self.state_sizes)))()
        lib.edgelstm_native_sizes(sizes)
        want = [self.input_size, self.output_size] + [s for _, s in self.state_sizes]
        if list(sizes) != want:
            raise UserError(f"{self.path}: the compiled model has sizes {list(sizes)}, its description says {want}")
        fn = lib.edgelstm_native_steps
        fn.argtypes = [ctypes.c_int32] + [ctypes.c_void_p] * (2 + 2 * len(self.state_sizes))
        fn.restype = None
        self._lib, self._fn = lib, fn
        self._widths = [self.output_size] + [s for _, s in self.state_sizes]
        self._names = [n for n, _ in self.state_sizes]
        # Asking numpy for an array's address costs ~1 us, as much as a small model's whole
        # step, so addresses are known instead of asked: inputs are copied into a buffer of
        # ours, outputs are carved from chunks allocated CHUNK steps at a time, and a state
        # array that is the one this backend returned last time reuses its known address.
        self._x_buffers: dict[int, tuple[np.ndarray, int]] = {}
        self._chunk: tuple[int, np.ndarray, int, int] | None = None  # (n, chunk, address, next step)
        self._last: list[tuple[np.ndarray, int]] = []
        self._last_n = 0

    CHUNK = 64

    def _outputs(self, n: int):
        """Fresh (n, width) arrays for y and every new state, and their addresses."""
        per_step = n * sum(self._widths)
        if self._chunk is None or self._chunk[0] != n or self._chunk[3] == self.CHUNK:
            chunk = np.empty(self.CHUNK * per_step, np.float32)
            self._chunk = (n, chunk, chunk.ctypes.data, 0)
        _, chunk, base, used = self._chunk
        self._chunk = (n, chunk, base, used + 1)
        offset = used * per_step
        views, ptrs = [], []
        for width in self._widths:
            views.append(chunk[offset:offset + n * width].reshape(n, width))
            ptrs.append(base + 4 * offset)
            offset += n * width
        return views, ptrs

    def run(self, x: np.ndarray, state: dict[str, np.ndarray]):
        n = len(x)
        if n not in self._x_buffers:
            buf = np.empty((n, self.input_size), np.float32)
            self._x_buffers[n] = (buf, buf.ctypes.data)
        x_buf, x_ptr = self._x_buffers[n]
        if np.shape(x) != x_buf.shape:  # no broadcasting: every value must be given
            raise UserError(f"input has shape {np.shape(x)}, expected ({n}, {self.input_size})")
        x_buf[...] = x
        last = self._last if self._last_n == n else []
        in_ptrs = []
        for k, (name, size) in enumerate(self.state_sizes):
            value = state[name]
            if k < len(last) and value is last[k][0]:
                in_ptrs.append(last[k][1])
                continue
            value = np.ascontiguousarray(value, np.float32)
            if value.shape != (n, size):
                raise UserError(f"state {name!r} has shape {value.shape}, expected ({n}, {size})")
            in_ptrs.append(value.ctypes.data)
            state = {**state, name: value}  # keeps the converted copy alive through the call
        views, ptrs = self._outputs(n)
        self._fn(n, x_ptr, ptrs[0], *in_ptrs, *ptrs[1:])
        self._last, self._last_n = list(zip(views[1:], ptrs[1:])), n
        return views[0], dict(zip(self._names, views[1:]))


def inspect(path: str | Path) -> dict:
    """What ``edgelstm info`` shows for a generated ``.c`` (checked, not compiled)."""
    path = Path(path)
    _, _, desc = read_verified(path)
    c = desc["c"]
    return {
        "format": "c",
        "c_name": c["name"],
        "header": c["header"],
        "flash_bytes": c.get("flash_bytes"),
        "ram_bytes_per_stream": c.get("state_bytes"),
        "description": desc,
    }
