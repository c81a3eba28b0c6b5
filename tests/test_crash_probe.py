"""runtime/crash_probe.py: the one wording of a child's death by a signal."""

import signal
import subprocess
import sys

import pytest

from edgelstm.runtime.crash_probe import killed_by


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL, signal.SIGABRT])
def test_killed_by_names_the_signal_of_a_real_child(sig):
    code = subprocess.run([sys.executable, "-c", f"import os; os.kill(os.getpid(), {int(sig)})"]).returncode
    assert killed_by(code) == f"killed by signal {int(sig)}, {sig.name}"


def test_an_exit_is_not_a_death_and_an_unnamed_signal_keeps_its_number():
    assert killed_by(0) is None and killed_by(3) is None
    assert killed_by(-200) == "killed by signal 200"
