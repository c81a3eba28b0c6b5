"""`edgelstm export --format tflite --c-array`: the TFLM C array, resolver lines and arena."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from edgelstm.cli import cli
from edgelstm.runtime.tflite_info import TFLiteFile
from edgelstm.tflm_project import resolver_method

MODEL = os.path.join(os.path.dirname(__file__), "..", "firmware_examples", "models", "lstm8x32.npz")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("tflm")
    result = CliRunner().invoke(cli, ["export", MODEL, "--format", "tflite", "--c-array", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_c_array_is_the_tflite_file_aligned(exported, tmp_path):
    """Compiled with a C++ compiler, the array is 16-byte aligned and byte-identical."""
    compiler = shutil.which("g++") or shutil.which("clang++")
    if compiler is None and os.environ.get("CI") != "true":
        pytest.skip("no C++ compiler")
    data = (exported / "lstm8x32.tflite").read_bytes()
    check = tmp_path / "check.cc"
    check.write_text("""#include <cstdint>
#include <cstdio>
#include "lstm8x32_model_data.h"
int main() {
    uint32_t sum = 0;
    for (unsigned i = 0; i < lstm8x32_tflite_len; ++i) sum = sum * 31u + lstm8x32_tflite[i];
    std::printf("%u %u %u\\n", lstm8x32_tflite_len, (unsigned)((uintptr_t)lstm8x32_tflite % 16u), sum);
}
""")
    exe = tmp_path / "check"
    subprocess.run([compiler, "-std=c++17", "-Wall", "-Werror", f"-I{exported}", str(check),
                    str(exported / "lstm8x32_model_data.cc"), "-o", str(exe)], check=True)
    length, misalign, checksum = map(int, subprocess.run([str(exe)], capture_output=True, text=True,
                                                         check=True).stdout.split())
    expected = 0
    for b in data:
        expected = (expected * 31 + b) & 0xFFFFFFFF
    assert (length, misalign, checksum) == (len(data), 0, expected)


def test_resolver_lines_name_every_operator(exported):
    header = (exported / "lstm8x32_model_data.h").read_text()
    ops = sorted(set(TFLiteFile.read(exported / "lstm8x32.tflite").all_operators))
    count = int(re.search(r"#define lstm8x32_OP_COUNT (\d+)", header).group(1))
    lines = re.findall(r"\(resolver\)\.(Add\w+)\(\);", header)
    assert count == len(ops) == len(lines)
    assert lines == [resolver_method(op) for op in ops]
    assert {"AddFullyConnected", "AddLogistic", "AddTanh"} <= set(lines)


def test_arena_size_is_what_tflm_needs(exported):
    """TFLM's interpreter runs the model in the stated arena and fails in 1 KiB less."""
    from tflite_micro.python.tflite_micro import runtime as tflm

    header = (exported / "lstm8x32_model_data.h").read_text()
    arena = int(re.search(r"#define lstm8x32_ARENA_BYTES (\d+)", header).group(1))
    data = (exported / "lstm8x32.tflite").read_bytes()
    tflm.Interpreter.from_bytes(data, arena_size=arena).invoke()
    with pytest.raises(Exception):
        tflm.Interpreter.from_bytes(data, arena_size=arena - 1024).invoke()


def test_c_array_needs_tflite(tmp_path):
    result = CliRunner().invoke(cli, ["export", MODEL, "--format", "npz", "--c-array", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "--c-array needs --format tflite" in result.output
    assert list(tmp_path.iterdir()) == []  # refused before anything is written
