"""Ctrl-C at any moment of a ``phewas`` command, its imports included, ends with "interrupted" on
one line and exit status 130, never a traceback."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXE = Path(sys.executable).with_name("phewas")


@pytest.mark.skipif(not EXE.exists(), reason="the phewas executable is not installed beside this Python")
@pytest.mark.parametrize("delay", [0.15, 0.4, 0.8, 1.3, 2.5])
def test_ctrl_c_at_any_moment_ends_in_one_line_and_130(tmp_path, delay):
    """A command interrupted while Python imports its modules (the first second or so), while it
    builds its parser, and while it works."""
    proc = subprocess.Popen([str(EXE), "simulate", "--out", str(tmp_path / "sim"), "--patients", "20000", "--quiet"],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("interrupted") and "Traceback" not in err, err
    assert not (tmp_path / "sim").exists()  # nothing half-written
