"""Firmware on emulated Cortex-M boards: generate, build, run under QEMU, measure.

``measure(spec, target, quantize)`` exports the model as C99 (``converters/c_source.py``),
writes a test sequence and the numpy reference's outputs as a C header, builds
``firmware_examples/`` with ``arm-none-eabi-gcc`` for the target's board, runs it under
``qemu-system-arm`` and returns what an embedded engineer asks first:

- correctness: every output the firmware printed (as exact float bits) checked here
  against the numpy reference, independently of the firmware's own verdict;
- flash (the model's text + rodata + data) and RAM (its data + bss + one stream's state +
  the stack one step uses, measured by stack painting);
- instructions per step: QEMU runs with ``-icount shift=0`` (one instruction = 1 ns of
  virtual time) and the firmware counts SysTick ticks (processor clock, 24-bit counter
  plus a wrap interrupt). The ticks-to-instructions ratio is calibrated in the same run
  against a loop of known length (40 instructions per tick on the 25 MHz MPS2 boards),
  so the figure's resolution is one tick over the whole run: ratio / steps instructions
  per step. It includes the call into ``NAME_step`` (a few instructions), not the resets.

QEMU counts instructions, not cycles: no pipeline, caches, wait states or dual issue
(the Cortex-M7's main advantage), so treat it as an architecture-level cost that
changes when the generated code changes, which is what a CI gate needs.

Never trusted: QEMU's exit status alone (some boards print nothing and exit 0). Every
figure is parsed from the firmware's output and a missing one is a failure.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelstm.core.metrics import predicted_class  # not argmax: a sigmoid head has one column
from edgelstm.core.errors import UserError, one_line, require_file
from edgelstm.runtime.crash_probe import killed_by
from edgelstm.core.spec import ModelSpec

#: What ``apt-get install --no-install-recommends`` needs on Debian / Ubuntu.
DEBIAN_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm make"



def _firmware_dir() -> Path:
    """firmware_examples/: package data of an installed wheel (edgelstm.firmware_examples),
    or the source checkout beside this package."""
    import importlib.util

    try:
        found = importlib.util.find_spec("edgelstm.firmware_examples")
    except (ImportError, ValueError):
        found = None
    for location in (found.submodule_search_locations or []) if found else []:
        if (Path(location) / "Makefile").is_file():
            return Path(location)
    return Path(__file__).resolve().parent.parent / "firmware_examples"


FIRMWARE_DIR = _firmware_dir()
BUNDLED_MODELS = FIRMWARE_DIR / "models"

#: Tolerance of every output against the float numpy reference, per quantization.
TOLERANCES = {
    # float32 on the FPU vs numpy: different summation order and expf/tanhf, over a
    # stream of a few hundred steps; measured errors are ~1e-6, this leaves room for drift.
    "float32": 1e-4,
    # int16x8: 8-bit weights with 16-bit activations and state (TFLM's LSTM kernel
    # test allows 1e-3 for one step; a stream accumulates the state's rounding).
    "int16x8": 2e-2,
    # int8: 8-bit weights (the C exporter keeps activations and state float so far: 0.017
    # measured on BasicMotions' softmax over 400 steps); 8e-2 also leaves room for 8-bit
    # activations, for which TFLM's int8 LSTM test allows 1e-2 per step, before a stream
    # adds its recurrent rounding.
    "int8": 8e-2,
}

#: Test stream: sequences from a reset state, steps each (the run stays well under a second).
TEST_SEQUENCES, TEST_STEPS = 4, 100
QEMU_TIMEOUT_S = 120


@dataclass(frozen=True)
class Target:
    board: str  # QEMU machine
    core: str
    fpu: bool


TARGETS = {
    "cortex-m4": Target("mps2-an386", "Cortex-M4F", True),
    "cortex-m7": Target("mps2-an500", "Cortex-M7", True),
    "cortex-m33": Target("mps2-an505", "Cortex-M33", True),
    "cortex-m3": Target("mps2-an385", "Cortex-M3", False),
}


def resolve_target(name: str) -> Target:
    if name not in TARGETS:
        raise UserError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
    return TARGETS[name]


def require_toolchain() -> None:
    """UserError naming the Debian packages when the compiler, newlib or QEMU is missing."""
    missing = [tool for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-objdump",
                                          "qemu-system-arm", "make")
               if shutil.which(tool) is None]
    if not missing:
        # newlib ships separately from the compiler; without it rdimon.specs is unknown.
        found = _tool(["arm-none-eabi-gcc", "-print-file-name=rdimon.specs"]).strip()
        if not Path(found).is_absolute():
            missing.append("newlib (rdimon.specs)")
    if missing:
        raise UserError(f"firmware needs {', '.join(missing)}: "
                        f"sudo apt-get install --no-install-recommends {DEBIAN_PACKAGES}")
    if not (FIRMWARE_DIR / "Makefile").is_file():
        raise UserError(f"{FIRMWARE_DIR}: the firmware project is missing (it ships with the source checkout)")


def _tool(cmd: list[str], cwd=None, timeout: float = 300) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"{cmd[0]} failed: {one_line(exc)}") from None
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise UserError(f"{cmd[0]} failed ({killed_by(proc.returncode) or f'exit {proc.returncode}'}): {tail}")
    return proc.stdout


# -- generated sources -----------------------------------------------------------------

def test_stream(spec, model_path=None) -> np.ndarray:
    """(sequences, steps, features) float32: held-out data recorded with the model or its
    bundled dataset, else seeded synthetic inputs (``edgelstm.calibration.resolve``)."""
    from edgelstm.calibration import resolve
    from edgelstm.converters.sequences import synthetic_sequences

    xs = resolve(spec, model_path).heldout[0]
    if xs is None or len(xs) < TEST_SEQUENCES or xs.shape[1] < 2:
        xs = synthetic_sequences(spec, n=TEST_SEQUENCES, steps=TEST_STEPS)
    return np.ascontiguousarray(xs[:TEST_SEQUENCES, :TEST_STEPS], dtype=np.float32)


def reference_outputs(spec, xs: np.ndarray) -> np.ndarray:
    """The numpy reference's output at every step, each sequence from a zero state."""
    from edgelstm.runtime.reference import run_sequence

    return run_sequence(spec, xs)[0].astype(np.float32)


def _c_rows(a: np.ndarray) -> str:
    """One braced C row per step: {x0, x1, ...},"""
    rows = a.reshape(-1, a.shape[-1])
    return ",\n".join("    {" + ", ".join(_c_float(v) for v in row) + "}" for row in rows)


def _c_float(v: float) -> str:
    if not math.isfinite(v):
        raise UserError("the reference produced a non-finite output; the model diverges on the test data")
    text = f"{float(v):.9g}"  # 9 significant digits: every float32 round-trips exactly
    return (text if any(ch in text for ch in ".e") else text + ".0") + "f"


def write_reference(path: Path, xs: np.ndarray, ys: np.ndarray, tolerance: float, model: str) -> Path:
    """reference.h: the test stream and the reference outputs, as the firmware reads them."""
    seqs, steps, features = xs.shape
    text = f"""/* Generated by edgelstm.firmware: the test stream and the numpy reference's outputs.
 * {seqs} sequences of {steps} steps, each from a reset state. Do not edit. */
#ifndef REFERENCE_H
#define REFERENCE_H

#define REF_MODEL "{model}"
#define REF_SEQUENCES {seqs}
#define REF_SEQ_STEPS {steps}
#define REF_STEPS {seqs * steps}
#define REF_INPUTS {features}
#define REF_OUTPUTS {ys.shape[-1]}
#define REF_TOLERANCE {tolerance!r}f

static const float ref_input[REF_STEPS][REF_INPUTS] = {{
{_c_rows(xs)}
}};

static const float ref_output[REF_STEPS][REF_OUTPUTS] = {{
{_c_rows(ys)}
}};

#endif
"""
    path.write_text(text)
    return path


def generate_c(spec, out_dir: Path, quantize: str, model_path=None, name: str = "model") -> Path:
    """``edgelstm export --format c`` into ``out_dir``; returns NAME.c."""
    from edgelstm.calibration import resolve
    from edgelstm.converters import ExportOptions, export

    calib = resolve(spec, model_path)
    heldout, heldout_targets = calib.heldout  # the export's own check, on real data if any
    calibrated = quantize != "float32"
    options = ExportOptions(quantize=quantize, basename=name, heldout=heldout, heldout_targets=heldout_targets,
                            calibration=calib.x if calibrated else None,
                            calibration_synthetic=calib.synthetic and calibrated)
    paths = export(spec, "c", out_dir, options)
    return next(p for p in paths if p.suffix == ".c")


def c_prefix(header: Path) -> str:
    """NAME from ``void NAME_step(`` in the generated header."""
    found = re.search(r"\bvoid\s+([A-Za-z_]\w*)_step\s*\(", header.read_text())
    if not found:
        raise UserError(f"{header}: no NAME_step() declaration; is this a header from `edgelstm export --format c`?")
    return found.group(1)


# -- build and run ---------------------------------------------------------------------

def build(gen_dir: Path, build_dir: Path, tgt: Target, name: str, step_q: bool) -> Path:
    """make in firmware_examples/; returns the ELF."""
    _tool(["make", "-s", "-C", str(FIRMWARE_DIR), f"BOARD={tgt.board}", f"GEN={gen_dir.resolve()}",
           f"BUILD={build_dir.resolve()}", f"MODEL_NAME={name}", f"STEP_Q={int(step_q)}"])
    return build_dir / "firmware.elf"


def run_qemu(elf: Path, tgt: Target, timeout: float = QEMU_TIMEOUT_S) -> tuple[int, str]:
    cmd = ["qemu-system-arm", "-M", tgt.board, "-display", "none", "-monitor", "none", "-serial", "none",
           "-icount", "shift=0", "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"{tgt.board}: the firmware did not finish within {timeout:g} s under QEMU") from None
    except OSError as exc:
        raise UserError(f"qemu-system-arm failed: {one_line(exc)}") from None
    return proc.returncode, proc.stdout + proc.stderr


_LINES = {
    "model": r"model (\S+) steps (\d+) inputs (\d+) outputs (\d+) macs_per_step (\d+)",
    "memory": r"state_bytes (\d+) step_stack_bytes (\d+) stack_available (\d+)",
    "calibration": r"calibration (\d+) (\d+) (\d+) (\d+)",
    "ticks": r"step_ticks (\d+)",
    "verdict": r"max_abs_err (\S+) tolerance (\S+) mismatches (\d+)",
    "result": r"RESULT (PASS|FAIL)",
}


def parse_output(text: str, steps: int, outputs: int) -> dict:
    """Every figure the firmware printed; UserError naming the first one missing."""
    found = {}
    for key, pattern in _LINES.items():
        m = re.search(rf"^{pattern}$", text, re.M)
        if m is None:
            tail = " | ".join(text.strip().splitlines()[-3:]) or "no output"
            raise UserError(f"the firmware printed no '{pattern.split()[0]}' line ({tail})")
        found[key] = m.groups()
    y = np.full((steps, outputs), np.nan, np.float32)
    seen = 0
    for m in re.finditer(r"^y (\d+)((?: [0-9a-f]{8})+)$", text, re.M):
        t, words = int(m.group(1)), m.group(2).split()
        if t < steps and len(words) == outputs:
            y[t] = struct.unpack(f"<{outputs}f", struct.pack(f"<{outputs}I", *(int(w, 16) for w in words)))
            seen += 1
    if seen != steps:
        raise UserError(f"the firmware printed {seen} of {steps} output rows")
    stack, available = int(found["memory"][1]), int(found["memory"][2])
    if stack >= available:
        raise UserError(f"one step used all {available:,} bytes of the firmware's stack (and maybe more): "
                        "raise STACK_SIZE in firmware_examples/boards/sections.ld")
    cal_short, ticks_short, cal_long, ticks_long = map(int, found["calibration"])
    if ticks_long <= ticks_short:
        raise UserError("SysTick did not advance under QEMU: no instruction counts")
    return {
        "outputs": y,
        "steps": int(found["model"][1]),
        "macs_per_step": int(found["model"][4]),
        "state_bytes": int(found["memory"][0]),
        "step_stack_bytes": int(found["memory"][1]),
        "instructions_per_tick": 2.0 * (cal_long - cal_short) / (ticks_long - ticks_short),
        "step_ticks": int(found["ticks"][0]),
        "firmware_max_abs_err": float(found["verdict"][0]),
        "firmware_mismatches": int(found["verdict"][2]),
        "firmware_result": found["result"][0],
    }


def section_sizes(path: Path) -> dict[str, int]:
    """Section name -> bytes, from ``arm-none-eabi-size -A`` (object file or ELF)."""
    sizes = {}
    for line in _tool(["arm-none-eabi-size", "-A", str(path)]).splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = sizes.get(parts[0], 0) + int(parts[1])
    return sizes


def memory_footprint(obj: Path) -> dict[str, int]:
    """The model's own flash and static RAM, from its object file (not newlib, not the test data)."""
    sizes = section_sizes(obj)

    def total(*prefixes):
        return sum(n for s, n in sizes.items() if s.startswith(prefixes) and not s.startswith(".rel"))

    return {"text": total(".text"), "rodata": total(".rodata"), "data": total(".data"), "bss": total(".bss")}


#: What an integer-only step must never reach: software floating point (libgcc's Arm EABI
#: helpers) and libm by name, and FPU arithmetic instructions (on cores that have one).
_FLOAT_HELPER = re.compile(r"^(__aeabi_[fd]|__(add|sub|mul|div|neg|cmp|eq|ne|lt|le|gt|ge|unord)[sd]f|__float|__fix|"
                           r"__extendsfdf|__truncdfsf|(exp|tanh|log|pow|sqrt)f?$)")
_VFP_ARITHMETIC = re.compile(r"\sv(add|sub|mul|nmul|div|fma|fms|mla|mls|sqrt|cvt[a-z]*(\.[su]32)?|cmpe?|neg|abs)"
                             r"\.f(32|64)")


def float_routines_reached(elf: Path, entry: str) -> list[str]:
    """Every floating-point routine reachable by calls from ``entry`` in the linked ELF:
    software-float helpers and libm by name, and any function doing FPU arithmetic."""
    calls: dict[str, set[str]] = {}
    fpu_users: set[str] = set()
    current = None
    for line in _tool(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(elf)]).splitlines():
        head = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if head:
            current = head.group(1)
            calls.setdefault(current, set())
            continue
        if current is not None and _VFP_ARITHMETIC.search(line):
            fpu_users.add(current)
        call = re.search(r"\s(?:bl|blx|b|b\.w|b\.n)\s+[0-9a-f]+ <([^>+]+)>", line)
        if call and current is not None and call.group(1) != current:
            calls[current].add(call.group(1))
    seen, todo = set(), [entry]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(calls.get(name, ()))
    return sorted(name for name in seen if _FLOAT_HELPER.match(name) or name in fpu_users)


# -- the whole measurement -------------------------------------------------------------

def measure(spec, target: str = "cortex-m4", quantize: str = "float32", *, model_path=None, c_file=None,
            build_dir=None, xs: np.ndarray | None = None, expected: np.ndarray | None = None,
            timeout: float = QEMU_TIMEOUT_S) -> dict:
    """Build and run ``spec`` on ``target`` under QEMU; every figure as a dict.

    ``c_file``: an already generated NAME.c (its NAME.h beside it) instead of exporting.
    ``xs`` / ``expected``: the test stream (sequences, steps, features) and the outputs
    the firmware must reproduce; by default the model's held-out or synthetic data and
    the numpy reference's outputs (tests pass a wrong ``expected`` to see it caught).
    ``passed`` is False when the firmware or the host check finds any output beyond the
    tolerance, or any output is not finite.
    """
    import tempfile

    tgt = resolve_target(target)
    if quantize not in TOLERANCES:
        raise UserError(f"--quantize {quantize}: choose from {', '.join(TOLERANCES)}")
    require_toolchain()
    tolerance = TOLERANCES[quantize]
    xs = test_stream(spec, model_path) if xs is None else np.asarray(xs, np.float32)
    reference = reference_outputs(spec, xs)
    expected = reference if expected is None else np.asarray(expected, np.float32)
    with tempfile.TemporaryDirectory(prefix="edgelstm-fw-") as tmp:
        root = Path(build_dir) if build_dir is not None else Path(tmp)
        run = _build_and_run(spec, tgt, quantize, root, c_file, model_path, xs, expected, tolerance, timeout)
    return _report(spec, target, tgt, quantize, run, reference, expected, tolerance)


@dataclass
class _FirmwareRun:
    """What one build and QEMU run left behind (read before its directory goes)."""
    name: str  # the C prefix
    status: int  # QEMU's exit status
    found: dict  # parse_output's figures
    model_mem: dict  # the model object's sections
    image: dict  # the ELF's sections
    soft_float: list[str] | None  # int16x8: float routines the integer step reaches


def _build_and_run(spec, tgt: Target, quantize: str, root: Path, c_file, model_path, xs: np.ndarray,
                   expected: np.ndarray, tolerance: float, timeout: float) -> _FirmwareRun:
    gen = root / "gen"
    gen.mkdir(parents=True, exist_ok=True)
    if c_file is None:
        c_file = generate_c(spec, gen, quantize, model_path)
    else:
        c_file = Path(c_file)
        for suffix in (".c", ".h"):
            src = c_file.with_suffix(suffix)
            if not src.is_file():
                raise UserError(f"{src}: no such file (NAME.c needs its NAME.h beside it)")
            if src.resolve() != (gen / src.name).resolve():
                shutil.copyfile(src, gen / src.name)
    name = c_prefix(c_file.with_suffix(".h"))
    seqs, steps, _ = xs.shape
    write_reference(gen / "reference.h", xs, expected, tolerance, spec.name)
    out_dir = root / tgt.board
    elf = build(gen, out_dir, tgt, name, step_q=quantize == "int16x8")
    status, text = run_qemu(elf, tgt, timeout)
    (out_dir / "qemu.log").write_text(text)
    found = parse_output(text, seqs * steps, expected.shape[-1])
    model_mem, image = memory_footprint(out_dir / f"{name}.o"), section_sizes(elf)
    soft_float = float_routines_reached(elf, f"{name}_step_q") if quantize == "int16x8" else None
    return _FirmwareRun(name, status, found, model_mem, image, soft_float)


def _report(spec, target: str, tgt: Target, quantize: str, run: _FirmwareRun, reference: np.ndarray,
            expected: np.ndarray, tolerance: float) -> dict:
    """Every figure of ``measure`` from one run; ``passed`` needs the firmware's own
    check, the host's check against ``expected`` and a clean QEMU exit."""
    found, model_mem, name = dict(run.found), run.model_mem, run.name
    seqs, steps = reference.shape[:2]
    y = found.pop("outputs").reshape(expected.shape)
    err = np.abs(y.astype(np.float64) - reference)
    max_err = float(err.max()) if np.isfinite(err).all() else math.inf
    against_expected = np.abs(y.astype(np.float64) - expected)
    host_ok = bool(np.isfinite(against_expected).all() and against_expected.max() <= tolerance)
    ticks = found["step_ticks"]
    ipt = found["instructions_per_tick"]
    instr = ipt * ticks / (seqs * steps)
    macs = found["macs_per_step"]
    result = {
        "model": spec.name,
        "target": target,
        "core": tgt.core,
        "board": tgt.board,
        "quantize": quantize,
        "entry_point": f"{name}_step_q" if quantize == "int16x8" else f"{name}_step",
        "passed": host_ok and run.status == 0 and found["firmware_result"] == "PASS",
        "qemu_exit_status": run.status,
        "steps": seqs * steps,
        "sequences": seqs,
        "tolerance": tolerance,
        "max_abs_err": max_err,
        "mean_abs_err": float(err.mean()) if math.isfinite(max_err) else math.inf,
        "instructions_per_step": round(instr, 1),
        "instructions_per_mac": round(instr / macs, 3) if macs else None,
        "instruction_resolution_per_step": round(ipt / (seqs * steps), 3),
        "instructions_per_tick": round(ipt, 4),
        "macs_per_step": macs,
        "flash_bytes": model_mem["text"] + model_mem["rodata"] + model_mem["data"],
        "ram_bytes": model_mem["data"] + model_mem["bss"] + found["state_bytes"] + found["step_stack_bytes"],
        "state_bytes": found["state_bytes"],
        "step_stack_bytes": found["step_stack_bytes"],
        "model_sections": model_mem,
        "image_sections": {k: v for k, v in run.image.items() if k in (".text", ".rodata", ".data", ".bss")},
        **{k: v for k, v in found.items() if k.startswith("firmware_")},
    }
    if run.soft_float is not None:
        result["float_routines_in_step"] = run.soft_float
        result["integer_only"] = not run.soft_float
    if spec.task == "classification":
        agree = predicted_class(y) == predicted_class(reference)
        result["class_agreement"] = float(agree.mean())
        result["final_class_agreement"] = float(agree[:, -1].mean())
    return result


def check_budgets(result: dict, max_instructions=None, max_flash=None, max_ram=None) -> list[str]:
    """One reason per broken budget (NaN or inf breaks every budget)."""
    broken = []
    if not result["passed"]:
        broken.append(f"outputs differ from the reference (max abs err {result['max_abs_err']:.3g} "
                      f"> {result['tolerance']:g}, or the firmware reported a failure)")
    for key, limit, unit in (("instructions_per_step", max_instructions, "instructions per step"),
                             ("flash_bytes", max_flash, "bytes of flash"), ("ram_bytes", max_ram, "bytes of RAM")):
        value = result[key]
        if limit is not None and not (math.isfinite(value) and value <= limit):
            broken.append(f"{value:,.0f} {unit} > budget {limit:,.0f}")
    return broken


def format_result(r: dict) -> list[str]:
    lines = [
        f"{r['model']} on {r['core']} ({r['board']} under QEMU), {r['quantize']}, entry {r['entry_point']}",
        f"  correctness      {'PASS' if r['passed'] else 'FAIL'}: max abs err {r['max_abs_err']:.3g} "
        f"(tolerance {r['tolerance']:g}) over {r['steps']} steps",
    ]
    if "class_agreement" in r:
        lines.append(f"  class agreement  {r['class_agreement']:.1%} of steps")
    lines += [
        f"  instructions     {r['instructions_per_step']:,.0f} per step, {r['instructions_per_mac']} per MAC "
        f"({r['macs_per_step']:,} MACs; resolution {r['instruction_resolution_per_step']:g})",
        f"  flash            {r['flash_bytes']:,} bytes (model code + weights)",
        f"  RAM              {r['ram_bytes']:,} bytes (state {r['state_bytes']} + step stack "
        f"{r['step_stack_bytes']} + static {r['model_sections']['data'] + r['model_sections']['bss']})",
    ]
    return lines


def write_json(path: Path, result: dict) -> None:
    Path(path).write_text(json.dumps(result, indent=2) + "\n")


def sources(model: Path, spec_path: Path | None, quantize: str | None) -> tuple[ModelSpec, Path, Path | None, str]:
    """What ``edgelstm firmware MODEL`` builds: (spec, model file, generated .c or None,
    quantization). A generated .c file takes its model from ``spec_path`` and, unless
    ``quantize`` is given, the quantization its .c.json records."""
    from edgelstm.keras_import import load_model_spec

    c_file = None
    if model.suffix == ".c":
        c_file = require_file(model)
        quantize = quantize or recorded_quantization(c_file)
        model = spec_path
    return load_model_spec(model), model, c_file, quantize or "float32"


def recorded_quantization(c_file: Path) -> str:
    """The quantization NAME.c.json records (float32 when it records none)."""
    from edgelstm.core.artifact import read_sidecar

    desc = read_sidecar(c_file) or {}
    quantize = desc.get("quantize") or "float32"
    return quantize if isinstance(quantize, str) else "float32"
