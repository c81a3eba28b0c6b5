"""Firmware on emulated Cortex-M boards (edgelstm.firmware, firmware_examples/).

Every bundled model is exported as C, built with arm-none-eabi-gcc for every board and
run under QEMU; each output the firmware printed is checked here against the numpy
reference (the firmware checks too, and a deliberately wrong reference must make it
fail). Builds are session-scoped: one per model, target and quantization.

Without the Arm toolchain or QEMU these tests skip locally; in CI (CI=true) they fail.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edgelstm import firmware as fw
from edgelstm.cli import cli
from edgelstm.converters import exporter
from edgelstm.core.errors import UserError
from edgelstm.core.spec import ModelSpec

MODELS = ("lstm8x32", "basicmotions")
#: The issue's matrix: float and int8 on the FPU cores, integer-only int16x8 on the M3.
RUNS = [(t, q) for t in ("cortex-m4", "cortex-m7", "cortex-m33") for q in ("float32", "int8")] + [
    ("cortex-m3", "int16x8")]
#: SysTick under -icount shift=0 ticks once per (1e9 / core clock) instructions: the MPS2
#: boards run at 25 MHz, the AN505 (SSE-200) at 20 MHz.
INSTRUCTIONS_PER_TICK = {"mps2-an385": 40, "mps2-an386": 40, "mps2-an500": 40, "mps2-an505": 50}


def _have_toolchain() -> bool:
    try:
        fw.require_toolchain()
        return True
    except UserError:
        return False


@pytest.fixture(scope="session")
def toolchain():
    if not _have_toolchain():
        message = f"Arm toolchain or QEMU missing ({fw.DEBIAN_PACKAGES})"
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": CI installs them (.ci/run), so this is a CI setup error")
        pytest.skip(message)


@pytest.fixture(scope="session")
def spec_of():
    cache = {}

    def load(name: str) -> ModelSpec:
        if name not in cache:
            cache[name] = ModelSpec.load_npz(fw.BUNDLED_MODELS / f"{name}.npz")
        return cache[name]

    return load


@pytest.fixture(scope="session")
def measured(toolchain, spec_of, tmp_path_factory):
    """measure(model, target, quantize), once per session per combination."""
    cache = {}

    def run(model: str, target: str, quantize: str) -> dict:
        key = (model, target, quantize)
        if key not in cache:
            build = tmp_path_factory.mktemp(f"fw-{model}-{target}-{quantize}")
            cache[key] = fw.measure(spec_of(model), target, quantize,
                                    model_path=fw.BUNDLED_MODELS / f"{model}.npz", build_dir=build)
        return cache[key]

    return run


def _require_quantization(quantize: str) -> None:
    available = exporter("c").QUANTIZATIONS
    if quantize not in available:
        pytest.skip(f"the C exporter offers {', '.join(available)}; {quantize} is not implemented there yet")


@pytest.mark.parametrize("target,quantize", RUNS)
@pytest.mark.parametrize("model", MODELS)
def test_firmware_reproduces_reference(measured, spec_of, model, target, quantize):
    _require_quantization(quantize)
    r = measured(model, target, quantize)
    spec = spec_of(model)
    assert r["passed"], r
    assert r["qemu_exit_status"] == 0 and r["firmware_mismatches"] == 0
    assert math.isfinite(r["max_abs_err"]) and r["max_abs_err"] <= fw.TOLERANCES[quantize]
    # The firmware's own maximum agrees with the host's (both against the same reference).
    assert r["firmware_max_abs_err"] == pytest.approx(r["max_abs_err"], rel=1e-3, abs=1e-9)
    assert r["macs_per_step"] == spec.stats()["macs_per_step"]
    assert r["state_bytes"] >= 4 * sum(s.size for s in spec.state_specs()) // (2 if quantize == "int16x8" else 1)
    weight_bytes = {"float32": 4, "int8": 1, "int16x8": 1}[quantize]
    assert r["flash_bytes"] >= weight_bytes * spec.stats()["parameters"]
    assert 0 < r["step_stack_bytes"] < 64 * 1024
    # At least one instruction per two MACs (a dual MAC is the most a Cortex-M does).
    assert r["instructions_per_mac"] > 0.5
    if spec.task == "classification":
        assert r["class_agreement"] >= 0.95
    if quantize == "int16x8":
        assert r["integer_only"], r["float_routines_in_step"]


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m3"])
def test_systick_calibration_matches_board_clock(measured, target):
    """The calibration loop's ratio is the board's clock period in ns (known values)."""
    quantize = "int16x8" if target == "cortex-m3" and "int16x8" in exporter("c").QUANTIZATIONS else "float32"
    r = measured("lstm8x32", target, quantize)
    assert r["instructions_per_tick"] == pytest.approx(INSTRUCTIONS_PER_TICK[r["board"]], rel=1e-4)


def test_wrong_reference_is_caught(toolchain, spec_of, tmp_path):
    """One output of the reference moved by 0.5: the firmware must report exactly it."""
    spec = spec_of("lstm8x32")
    xs = fw.test_stream(spec)
    wrong = fw.reference_outputs(spec, xs)
    wrong[1, 37, 5] += 0.5
    r = fw.measure(spec, "cortex-m4", "float32", xs=xs, expected=wrong, build_dir=tmp_path)
    assert not r["passed"]
    assert r["firmware_result"] == "FAIL" and r["firmware_mismatches"] == 1
    assert r["qemu_exit_status"] != 0
    assert r["max_abs_err"] <= fw.TOLERANCES["float32"]  # against the true reference it is right
    assert fw.check_budgets(r)[0].startswith("outputs differ")


def test_silent_firmware_is_a_failure():
    """Some QEMU boards print nothing and exit 0: that must never pass."""
    with pytest.raises(UserError, match="printed no"):
        fw.parse_output("", steps=4, outputs=2)
    good = "\n".join([
        "y 0 3f800000", "model m steps 2 inputs 1 outputs 1 macs_per_step 4",
        "state_bytes 8 step_stack_bytes 16 stack_available 4096",
        "calibration 100 10 1100 60", "step_ticks 5", "max_abs_err 0 tolerance 0.0001 mismatches 0", "RESULT PASS"])
    with pytest.raises(UserError, match="1 of 2 output rows"):
        fw.parse_output(good, steps=2, outputs=1)
    with pytest.raises(UserError, match="all 16 bytes of the firmware's stack"):
        fw.parse_output(good.replace("available 4096", "available 16") + "\ny 1 40000000", steps=2, outputs=1)
    found = fw.parse_output(good + "\ny 1 40000000", steps=2, outputs=1)
    assert found["outputs"].ravel().tolist() == [1.0, 2.0]
    assert found["instructions_per_tick"] == 2 * 1000 / 50


def test_cli_instruction_budget(toolchain, tmp_path):
    model = str(fw.BUNDLED_MODELS / "lstm8x32.npz")
    runner = CliRunner()
    out = tmp_path / "fw.json"
    ok = runner.invoke(cli, ["firmware", model, "--target", "cortex-m4", "--json", str(out),
                             "--max-instructions", "1e9", "--max-flash", "1000000", "--max-ram", "100000"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(out.read_text())
    assert data["passed"] and data["instructions_per_step"] > data["macs_per_step"] / 2
    assert "instructions" in ok.output and "per MAC" in ok.output
    tight = runner.invoke(cli, ["firmware", model, "--target", "cortex-m4", "--max-instructions", "100"])
    assert tight.exit_code == 1
    fail_lines = [line for line in tight.output.splitlines() if line.startswith("FAIL:")]
    assert len(fail_lines) == 1 and "instructions per step > budget 100" in fail_lines[0]


FLOAT_PROBE = """
int twice(int x) { return 2 * x; }
__attribute__((noinline)) int integer_step(int x) { return twice(x) >> 1; }
__attribute__((noinline)) float float_step(float x) { return x * 1.5f; }
void _start(void)
{
    volatile int a = integer_step(3);
    volatile float b = float_step(2.0f);
    (void)a;
    (void)b;
    for (;;) {}
}
"""


@pytest.mark.parametrize("cpu,float_routine", [("-mcpu=cortex-m3", "__aeabi_fmul"),
                                               ("-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard", "float_step")])
def test_float_routines_reached(toolchain, tmp_path, cpu, float_routine):
    """The integer-only check sees soft-float calls (M3) and FPU instructions (M4F)."""
    import subprocess

    (tmp_path / "probe.c").write_text(FLOAT_PROBE)
    elf = tmp_path / "probe.elf"
    subprocess.run(["arm-none-eabi-gcc", *cpu.split(), "-mthumb", "-O1", "-nostdlib", "-o", str(elf),
                    str(tmp_path / "probe.c"), "-lgcc"], check=True)
    assert fw.float_routines_reached(elf, "integer_step") == []
    assert float_routine in fw.float_routines_reached(elf, "float_step")


def test_cli_missing_toolchain_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    result = CliRunner().invoke(cli, ["firmware", str(fw.BUNDLED_MODELS / "lstm8x32.npz")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "gcc-arm-none-eabi" in lines[0] and "qemu-system-arm" in lines[0]
    assert "Traceback" not in result.output


def test_budget_nan_breaks_every_budget():
    r = {"passed": True, "max_abs_err": 0.0, "tolerance": 1e-4, "instructions_per_step": float("nan"),
         "flash_bytes": 10, "ram_bytes": 10}
    assert len(fw.check_budgets(r, max_instructions=1e12)) == 1
    assert fw.check_budgets(r, max_flash=10, max_ram=10) == []


def test_reference_header_round_trips_every_float(spec_of, tmp_path):
    """reference.h holds the reference's outputs exactly (9 significant digits per float)."""
    spec = spec_of("lstm8x32")
    xs = fw.test_stream(spec)
    ys = fw.reference_outputs(spec, xs)
    header = fw.write_reference(tmp_path / "reference.h", xs, ys, 1e-4, "m").read_text()
    body = header[header.index("ref_output"):]
    values = np.array(re.findall(r"(-?[0-9.]+(?:e[-+]?[0-9]+)?)f", body), np.float32)
    np.testing.assert_array_equal(values, ys.ravel())
