"""Export as a pure pipeline: converters and runtime never write to the terminal; what
an export has to say reaches the CLI (or a library caller) through a callback.

The first tests read the sources (AST), so a ``print`` added anywhere in
``converters/`` or ``runtime/`` fails here even on a path no other test runs.
"""

import ast
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo

REPO = Path(__file__).resolve().parents[1]
QUIET_PACKAGES = ("converters", "runtime", "edgelstm/core")
#: Names whose mere use writes to (or hands over) the terminal.
FORBIDDEN_NAMES = {"print", "pprint", "click"}
#: ``module.attribute`` uses that write to the terminal.
FORBIDDEN_ATTRIBUTES = {("sys", "stdout"), ("sys", "stderr"), ("sys", "__stdout__"), ("sys", "__stderr__"),
                        ("traceback", "print_exc"), ("traceback", "print_exception"), ("traceback", "print_stack")}
#: Descriptors 1 and 2 written directly.
TERMINAL_FDS = {1, 2}
#: The one module allowed to touch stderr, and what it may do there. It redirects file
#: descriptor 2 around calls into native libraries (TensorFlow, LiteRT), which write their
#: start-up chatter to the descriptor where no Python callback can reach it, and writes
#: back every line of theirs that is not known noise: it passes on what native code said,
#: and adds nothing of its own. It flushes ``sys.stderr`` so Python's buffered text lands
#: before and after the redirection, in order.
FD_FILTER = {"runtime/native_stderr.py": {"sys.stderr", "os.write(2)"}}


def terminal_writes(source: str) -> list[tuple[int, str]]:
    """(line, what) for every way ``source`` writes to stdout / stderr itself."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append((node.lineno, node.id))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [(node.lineno, f"import {m}") for m in modules if m.split(".")[0] in ("click", "pprint")]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and (node.value.id, node.attr) in FORBIDDEN_ATTRIBUTES:
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "write" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "os" and node.args \
                and isinstance(node.args[0], ast.Constant) and node.args[0].value in TERMINAL_FDS:
            found.append((node.lineno, f"os.write({node.args[0].value})"))
    return found


def quiet_sources() -> list[Path]:
    files = sorted(p for package in QUIET_PACKAGES for p in (REPO / package).rglob("*.py"))
    assert len(files) > 20, files  # the walk found the packages
    return files


def test_converters_and_runtime_never_write_to_the_terminal():
    offences = []
    for path in quiet_sources():
        rel = path.relative_to(REPO).as_posix()
        allowed = FD_FILTER.get(rel, set())
        offences += [f"{rel}:{line}: {what}" for line, what in terminal_writes(path.read_text())
                     if what not in allowed]
    assert not offences, "pass a warn/echo callback instead:\n" + "\n".join(offences)


def test_the_fd_filter_is_the_only_exception_and_still_needs_it():
    """The exception is not stale: native_stderr.py does what it is excused for, and
    nothing more."""
    for rel, allowed in FD_FILTER.items():
        found = {what for _, what in terminal_writes((REPO / rel).read_text())}
        assert found == allowed, (rel, found)


@pytest.mark.parametrize("snippet, what", [
    ("print('x')", "print"),
    ("def f(echo=print):\n    echo('x')", "print"),
    ("import click\nclick.echo('x', err=True)", "import click"),
    ("from click import echo", "import click"),
    ("import sys\nsys.stderr.write('x')", "sys.stderr"),
    ("import sys\nsys.stdout.write('x')", "sys.stdout"),
    ("import os\nos.write(2, b'x')", "os.write(2)"),
    ("import traceback\ntraceback.print_exc()", "traceback.print_exc"),
])
def test_the_walk_catches_each_way_to_write(snippet, what):
    assert what in {w for _, w in terminal_writes(snippet)}


def test_the_walk_leaves_callbacks_and_logging_alone():
    source = ("import logging, warnings\n"
              "def export(spec, warn):\n"
              "    warn('note: x')\n"
              "    logging.getLogger('edgelstm').warning('x')\n"
              "    warnings.warn('x')\n"
              "    open('f').write('x')\n")
    assert terminal_writes(source) == []


# -- the lines still reach the user ---------------------------------------------------------
# The check line of every export ("<file>: max |export - float| ...", "synthetic",
# "held out") reaching the CLI's stderr is asserted by test_guards.py
# (test_float_tflite_check_on_write_uses_the_window_and_says_synthetic,
# test_int8_check_on_write_is_not_on_the_calibration_data); the CLI's own calibration
# warning by test_guards.py::test_calibration_warning_only_where_calibration_is_used. The
# tests below cover the lines an exporter itself says.

def invoke(*args):
    from edgelstm.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cli_shows_the_onnx_exporters_note(tmp_path):
    spec_path = zoo.spec("gru-seq-bias-1x-timedistributed").save_npz(tmp_path / "gru.npz")
    result = invoke("export", spec_path, "--format", "onnx", "--quantize", "dynamic", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output + result.stderr
    notes = [ln for ln in result.stderr.splitlines() if ln.startswith("note: GRU")]
    assert len(notes) == 1 and "kept in float32" in notes[0], result.stderr
    desc = json.loads((tmp_path / "out" / "gru.dynamic.onnx.json").read_text())
    assert desc["quantize_note"] in notes[0]  # the line says what the description records


def test_cli_shows_the_tflite_exporters_int8_warning(tmp_path):
    spec_path = zoo.spec("rnn-act_tanh").save_npz(tmp_path / "rnn.npz")
    result = invoke("export", spec_path, "--format", "tflite", "--quantize", "int8", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output + result.stderr
    warned = [ln for ln in result.stderr.splitlines() if "int8 SimpleRNN" in ln]
    assert len(warned) == 1 and warned[0].startswith("warning: "), result.stderr
    assert "rnn.int8.tflite: " in result.stderr  # and the check line, after it


def test_without_a_callback_the_lines_go_to_the_logger(tmp_path, caplog, capfd):
    from edgelstm.converters import ExportOptions, export

    with caplog.at_level(logging.WARNING, logger="edgelstm.converters"):
        export(zoo.spec("lstm-act_tanh"), "npz", tmp_path, ExportOptions(basename="m"))
    lines = [r.getMessage() for r in caplog.records if r.name == "edgelstm.converters"]
    assert len(lines) == 1 and lines[0].startswith("m.npz: "), lines
    out, err = capfd.readouterr()
    assert "m.npz: " not in out + err  # the library itself wrote nothing


def test_a_callback_gets_every_line_and_nothing_is_written(tmp_path, capfd):
    from edgelstm.converters import ExportOptions, export

    lines = []
    export(zoo.spec("gru-seq-bias-1x-timedistributed"), "onnx", tmp_path, ExportOptions(quantize="dynamic"),
           echo=lines.append)
    assert [ln for ln in lines if ln.startswith("note: GRU")], lines
    assert any(ln.startswith("model.onnx: ") for ln in lines), lines
    out, err = capfd.readouterr()
    assert out == "" and "note: " not in err, (out, err)


# -- the description is written once, after the check ----------------------------------------

def embedded_description(path: Path) -> dict:
    """What the runtime reads from inside the artifact itself."""
    if path.suffix == ".tflite":
        from edgelstm.runtime.tflite_info import TFLiteFile

        return TFLiteFile.read(path).description()
    if path.suffix == ".onnx":
        import onnx

        return json.loads({p.key: p.value for p in onnx.load(path).metadata_props}["edgelstm"])
    from edgelstm.runtime.native_backend import split_source

    return split_source(path.read_text())[1]


@pytest.mark.parametrize("fmt, quantize", [("tflite", "int8"), ("onnx", "dynamic"), ("c", "int16x8")])
def test_sidecar_is_the_embedded_description_plus_the_check(tmp_path, fmt, quantize):
    from edgelstm.converters import ExportOptions, export

    case_id = "lstm-act_tanh"
    windows, _ = zoo.inputs(case_id)
    paths = export(zoo.spec(case_id), fmt, tmp_path, ExportOptions(quantize=quantize, basename="m",
                                                                   calibration=windows), echo=lambda line: None)
    assert paths[-1].name == paths[0].name + ".json" and sorted(tmp_path.iterdir()) == sorted(paths)
    sidecar = json.loads(paths[-1].read_text())
    verification = sidecar.pop("verification")
    from edgelstm.converters import CALIBRATED

    # the split the pipeline made once: calibrated exports are checked on what calibration did not see
    held_out = "held out from the calibration data" if quantize in CALIBRATED else f"the data given ({quantize} "
    assert verification["sequences"] >= 1 and verification["data"].startswith(held_out), verification["data"]
    assert sidecar == embedded_description(paths[0])
