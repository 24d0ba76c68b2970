"""``probe``'s inputs checked before any work (``cohorts/probe_data.py``): ``windows.npy``'s shape
and dtype, labels that are finite numbers, class tasks with two classes, rows of ``windows.npy``
that no example names (counted and reported), and an existing ``--out`` refused before the
windows are preprocessed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import one_line_error, pulse, run_cli


def dataset(folder, n=18, rows=None, hr=None, af=None, windows=None):
    """``n`` 10-s windows at 50 Hz of 6 subjects; ``rows``: the windows labels.csv names."""
    folder.mkdir(parents=True, exist_ok=True)
    x = np.stack([pulse(10, 50, 60 + 3 * k, k) for k in range(n)]).astype(np.float32)
    np.save(folder / "windows.npy", x if windows is None else windows)
    rows = range(n) if rows is None else rows
    hr = hr or {}
    af = af or {}
    lines = ["window,subject,hr,af"] + [f"{i},s{i % 6},{hr.get(i, 60 + 3 * i)},{af.get(i, i % 2)}" for i in rows]
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    (folder / "dataset.toml").write_text('name = "t"\nfs = 50\n[tasks.hr]\nkind = "regression"\n'
                                         '[tasks.af]\nkind = "binary"\n')
    return folder


def probe_args(ds, out, *extra):
    return ["probe", "--dataset", ds, "--encoder", "features", "--out", out, "--bootstrap", "0", "--folds", "2",
            "--paper", "none", *extra]


@pytest.mark.parametrize("windows, needle", [
    (np.zeros(900, np.float32), "has shape (900,); expected [windows, samples]"),
    (np.zeros((18, 0), np.float32), "has shape (18, 0)"),
    (np.array([["a"] * 500] * 18), "holds <U1 values; expected numbers"),
])
def test_windows_npy_of_the_wrong_shape_or_dtype(tmp_path, capsys, windows, needle):
    ds = dataset(tmp_path / "ds", windows=windows)
    one_line_error(probe_args(ds, tmp_path / "out"), capsys, "windows.npy", needle)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "probe.csv").write_text("kept")
    one_line_error(probe_args(ds, tmp_path / "old", "--force"), capsys, "windows.npy", needle)
    assert (tmp_path / "old" / "probe.csv").read_text() == "kept"


def test_windows_npy_holding_objects(tmp_path, capsys):
    ds = dataset(tmp_path / "ds")
    np.save(ds / "windows.npy", np.array([[1.0, "x"]] * 18, dtype=object), allow_pickle=True)
    one_line_error(probe_args(ds, tmp_path / "out"), capsys, "windows.npy", "not readable")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_a_label_that_is_not_finite(tmp_path, capsys, value):
    ds = dataset(tmp_path / "ds", hr={4: value})
    one_line_error(probe_args(ds, tmp_path / "out"), capsys, "labels.csv, row 6, column 'hr'", "not a finite number")


def test_a_class_task_with_one_class(tmp_path, capsys):
    ds = dataset(tmp_path / "ds", af=dict.fromkeys(range(18), 1))
    one_line_error(probe_args(ds, tmp_path / "out"), capsys, "labels.csv, column 'af'", "one class ('1')")
    rc, _ = run_cli(probe_args(ds, tmp_path / "out", "--task", "hr"), capsys)  # the other task still probes
    assert rc == 0


def test_rows_of_windows_npy_that_no_example_names_are_counted(tmp_path, capsys):
    ds = dataset(tmp_path / "ds", rows=range(0, 18, 2), af={i: (i // 2) % 2 for i in range(18)})
    rc, err = run_cli(probe_args(ds, tmp_path / "out"), capsys)
    assert rc == 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["unused_window_rows"] == 9
    assert any("9 rows of windows.npy are named by no row of labels.csv" in line for line in err), err


def test_an_existing_out_is_refused_before_any_work(tmp_path, capsys):
    ds = dataset(tmp_path / "ds")
    (tmp_path / "out").mkdir()
    one_line_error(probe_args(ds, tmp_path / "out"), capsys, "out: exists already")
    assert not (ds / "cache").exists()  # nothing was preprocessed
