"""``phewas.base.io``: outputs written whole or not at all."""

import os
import subprocess
import sys


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    from phewas.base.io import atomic_dir

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [tmp_path / f".out.tmp-{dead.pid}", tmp_path / f".out.old-{dead.pid}"]
    for p in stale:
        p.mkdir()
        (p / "big.npy").write_bytes(b"0" * 1000)
    live = tmp_path / f".out.tmp-{os.getppid()}"  # a running process: not ours to remove
    live.mkdir()
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "x").write_text("x")
    assert not any(p.exists() for p in stale) and live.exists() and (tmp_path / "out" / "x").exists()
