"""The runtime runs on a board without TensorFlow, Keras or onnx."""

import subprocess
import sys

import numpy as np


def test_runtime_does_not_import_heavy_packages(tmp_path):
    import zoo

    path = zoo.spec("lstm-last-bias-2x-softmax").save_npz(tmp_path / "m.npz")
    code = f"""
import sys
import numpy as np
import edgelstm.runtime
from edgelstm.runtime import load
model = load({str(path)!r})
y = model.run(np.zeros((50, model.input_size), np.float32))
assert y.shape == (50, model.output_size) and np.isfinite(y).all()
heavy = sorted(m for m in ("tensorflow", "keras", "onnx", "tf_keras", "tf2onnx") if m in sys.modules)
print(",".join(heavy) or "clean")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "clean"


def test_cli_run_does_not_import_heavy_packages(tmp_path):
    import zoo

    path = zoo.spec("gru-seq-bias-1x-timedistributed").save_npz(tmp_path / "m.npz")
    code = ("import sys; from edgelstm.cli import main; sys.argv=['edgelstm','run',sys.argv[1]]\n"
            "try: main()\nexcept SystemExit: pass\n"
            "print([m for m in ('tensorflow','keras','onnx') if m in sys.modules], file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], input="0.1,0.2,0.3\n", capture_output=True,
                          text=True, timeout=120)
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 2
    assert np.isfinite(np.array(proc.stdout.strip().splitlines()[1].split(","), float)).all()
