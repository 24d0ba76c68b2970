"""Bad inputs and faults, a test for each: the expected outcome is one line naming the file or flag
and exit status 2, nothing lost, nothing half-written.

- `--force` with a bad `--init`, or a cohort without a segment store: the finished run is untouched.
- a fresh run that fails during set-up: no run folder.
- `simulate` over a folder it did not write (`--force` or not; `run-all` too): refused, folder untouched.
- `simulate` over an earlier simulation without `--force`: refused.
- `run-all` over a simulation that its `[simulate]` does not describe: refused, saying to delete it or point
  `[paths] data` elsewhere; one written before a setting existed matches at that setting's default.
- temporaries of dead processes beside an output: removed at the next start; a live process's kept
  (`tests/base/test_io.py`, `tests/cohorts/test_segments.py`).
- `--resume` with changed settings: refused, naming them; speed-only ones may change.
- `predict` on an unfinished run: refused unless `--allow-unfinished` (recorded); `--split bogus` refused; no
  overwrite without `--force`.
- settings out of range (`--notch-hz -60`, `--min-positives 0`, `--alpha -1`, `--folds 0`, ...): one line naming the
  flag, exit 2.
- a batch larger than the training set; `--device cuda` without a GPU: one line, exit 2.
- predictions with `inf`, an integer `stay_id`, or not Parquet: one line naming the file (and column), exit 2.
- `--columns` a folder or a binary file; `--out` under a file: one line, exit 2.
- a segment store without `manifest.json`: one line, exit 2.
- `--init`: a checkpoint of another size, a folder without `config.json`: one line, exit 2.
- `run-all` with an unknown key: one line naming the key, exit 2.
- `run-all` `[models.NAME]`: an unknown kind or key, a name that cannot be a file name or is `finetune`: one line
  naming the table, exit 2.
- `run-all` after changed inputs, a stage rerun by hand, new code; speed-only changes: reruns what depends on the
  change (and `tests/app/test_study.py`); speed-only: nothing.
- CSV with extra fields, or another delimiter: the line named.
- a checkpoint holding pickled objects: refused, never advising `weights_only=False` (`tests/encoder/test_encoder.py`).
- torchrun: the ECG feature cache: rank 0 computes and writes, the other waits.
- no torch installed: `phewas pretrain`: one line: `pip install 'phewas[train]'`.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import torch
from helpers import one_line_error, run_cli

from phewas.cli import main


def fake_finished_run(path):
    path.mkdir(parents=True)
    (path / "manifest.json").write_text('{"command": "finetune", "mine": "the old run"}')
    return path


# ---------------------------------------------------------------- data loss
def test_force_with_bad_init_keeps_the_finished_run(sim_store, sim_cohort, tmp_path, capsys):
    run = fake_finished_run(tmp_path / "run")
    one_line_error(["finetune", "--cohort", sim_cohort, "--out", run, "--force", "--preset", "demo",
                    "--init", tmp_path / "nope.pth"], capsys, "nope.pth")
    assert json.loads((run / "manifest.json").read_text())["mine"] == "the old run"


def test_force_without_segment_store_keeps_the_finished_run(sim_cohort, tmp_path, capsys):
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    for name in ("stays.parquet", "labels.parquet", "phecodes.parquet", "manifest.json"):
        os.symlink(sim_cohort / name, cohort / name)
    run = fake_finished_run(tmp_path / "run")
    one_line_error(["pretrain", "--cohort", cohort, "--out", run, "--force", "--preset", "demo"], capsys,
                   "no segment store")
    assert json.loads((run / "manifest.json").read_text())["mine"] == "the old run"


def test_a_fresh_run_that_fails_during_set_up_leaves_no_folder(sim_store, sim_cohort, tmp_path, capsys):
    run = tmp_path / "new"
    one_line_error(["finetune", "--cohort", sim_cohort, "--out", run, "--preset", "demo",
                    "--batch-size", "100000"], capsys, "--batch-size", "fewer than one batch")
    assert not run.exists()


def test_simulate_never_replaces_a_folder_it_did_not_write(tmp_path, capsys):
    data = tmp_path / "mcmed"
    data.mkdir()
    (data / "visits.csv").write_text("real data\n")
    for force in ([], ["--force"]):
        one_line_error(["simulate", "--out", data, "--patients", "3", *force], capsys,
                       "not written by `phewas simulate`")
    assert (data / "visits.csv").read_text() == "real data\n"
    cfg = tmp_path / "study.toml"
    cfg.write_text('[paths]\ndata = "mcmed"\nwork = "work"\n[simulate]\npatients = 3\n')
    one_line_error(["run-all", "--config", cfg], capsys, "not written by `phewas simulate`")
    assert sorted(p.name for p in data.iterdir()) == ["visits.csv"]


def test_simulate_over_an_earlier_simulation_needs_force(tmp_path, capsys):
    out = tmp_path / "sim"
    assert run_cli(["simulate", "--out", out, "--patients", "3", "--minutes", "0.3"], capsys)[0] == 0
    one_line_error(["simulate", "--out", out, "--patients", "3", "--minutes", "0.3"], capsys, "--force")
    assert run_cli(["simulate", "--out", out, "--patients", "4", "--minutes", "0.3", "--force"], capsys)[0] == 0
    assert json.loads((out / "manifest.json").read_text())["parameters"]["patients"] == 4


def test_run_all_keeps_a_simulation_of_an_older_version_and_refuses_another_one(tmp_path, capsys):
    """A manifest written before a setting existed matches at that setting's default (the demo
    folder of an earlier version is reused); other settings are refused with run-all's advice."""
    from cohorts.sim import PopulationConfig
    from phewas.study import same_simulation
    cfg = PopulationConfig(patients=3, minutes=0.3)
    older = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("hard", "world_seed")}
    assert same_simulation(older, cfg)
    assert not same_simulation(older, PopulationConfig(patients=3, minutes=0.3, hard=True))
    assert not same_simulation(older | {"patients": 4}, cfg)
    assert not same_simulation(older | {"retired_knob": 1}, cfg)
    out = tmp_path / "mcmed"
    assert run_cli(["simulate", "--out", out, "--patients", "3", "--minutes", "0.3"], capsys)[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["parameters"] = {k: v for k, v in manifest["parameters"].items() if k != "hard"}
    (out / "manifest.json").write_text(json.dumps(manifest))
    from phewas.study import _simulate
    assert _simulate(out, {"patients": 3, "minutes": 0.3}) == manifest  # kept, not rewritten
    cfg_file = tmp_path / "study.toml"
    cfg_file.write_text('[paths]\ndata = "mcmed"\nwork = "work"\n[simulate]\npatients = 5\nminutes = 0.3\n')
    one_line_error(["run-all", "--config", cfg_file], capsys, "mcmed", "delete it, or point [paths] data elsewhere")


# ---------------------------------------------------------------- silently wrong
TINY = ["--preset", "demo", "--steps", "4", "--batch-size", "16", "--eval-every", "2",
        "--checkpoint-every", "2", "--retrieval-batch", "8", "--workers", "0"]


@pytest.mark.slow
def test_resume_refuses_changed_settings(sim_store, sim_cohort, tmp_path, capsys):
    run = tmp_path / "pre"
    assert run_cli(["pretrain", "--cohort", sim_cohort, "--out", run, *TINY, "--stop-after-steps", "2"],
                   capsys)[0] == 0
    before = (run / "config.json").read_text()
    msg = one_line_error(["pretrain", "--cohort", sim_cohort, "--out", run, *TINY, "--resume", "--lr", "0.5"],
                         capsys, "--resume", "lr: 0.005 -> 0.5")
    assert "workers" in msg  # says which settings may change
    assert (run / "config.json").read_text() == before  # not rewritten to the refused values
    # another preset is another model
    one_line_error(["pretrain", "--cohort", sim_cohort, "--out", run, *TINY, "--resume", "--preset", "study",
                    "--chunk-size", "0", "--ecg-from-scratch"], capsys, "preset: 'demo' -> 'study'")
    # speed-only settings may change
    assert run_cli(["pretrain", "--cohort", sim_cohort, "--out", run, *TINY[:-1], "1", "--resume"],
                   capsys)[0] == 0
    assert json.loads((run / "manifest.json").read_text())["summary"]["finished"]


@pytest.mark.slow
def test_predict_refuses_an_unfinished_run(sim_store, sim_cohort, tmp_path, capsys):
    run = tmp_path / "ft"
    from cohorts.splits import TRAIN_SPLITS
    train = sim_store.stays.filter(pl.col("split").is_in(TRAIN_SPLITS) & (pl.col("n_ppg_windows") > 0))
    first_eval = train.height // 8  # one epoch: the first validation writes best.pt
    assert run_cli(["finetune", "--cohort", sim_cohort, "--out", run, "--preset", "demo", "--batch-size", "8",
                    "--epochs", "3", "--stop-after-steps", first_eval + 1, "--min-train-positives", "3"],
                   capsys)[0] == 0
    assert (run / "checkpoints" / "best.pt").exists() and not (run / "manifest.json").exists()
    one_line_error(["predict", "--run", run, "--cohort", sim_cohort], capsys, "has not finished",
                   "--allow-unfinished")
    assert not (run / "predictions.parquet").exists()
    assert run_cli(["predict", "--run", run, "--cohort", sim_cohort, "--allow-unfinished"], capsys)[0] == 0
    m = json.loads((run / "predictions.manifest.json").read_text())
    assert m["allow_unfinished"] is True and m["run_finished"] is False
    one_line_error(["predict", "--run", run, "--cohort", sim_cohort, "--allow-unfinished"], capsys, "--force")
    with pytest.raises(SystemExit) as e:  # argparse: not a split
        main(["predict", "--run", str(run), "--cohort", str(sim_cohort), "--split", "bogus"])
    assert e.value.code == 2
    from encoder.config import PredictConfig
    from encoder.predict import predict
    from phewas.base.errors import SettingError
    with pytest.raises(SettingError, match="--split"):
        predict(sim_cohort, run, PredictConfig(split="bogus", allow_unfinished=True), overwrite=True)


@pytest.mark.parametrize("args,flag", [
    (["extract-segments", "--data", "D", "--cohort", "C", "--notch-hz", "-60"], "--notch-hz"),
    (["extract-segments", "--data", "D", "--cohort", "C", "--per-stay", "0"], "--per-stay"),
    (["build-cohort", "--data", "D", "--out", "O", "--min-code-count", "0"], "--min-code-count"),
    (["build-cohort", "--data", "D", "--out", "O", "--workers", "0"], "--workers"),
    (["report", "--cohort", "C", "--predictions", "P", "--out", "O", "--min-positives", "0"], "--min-positives"),
    (["report", "--cohort", "C", "--predictions", "P", "--out", "O", "--min-positives", "-5"], "--min-positives"),
    (["report", "--cohort", "C", "--predictions", "P", "--out", "O", "--alpha", "-1"], "--alpha"),
    (["report", "--cohort", "C", "--predictions", "P", "--out", "O", "--folds", "0"], "--folds"),
    (["report", "--cohort", "C", "--predictions", "P", "--out", "O", "--workers", "0"], "--workers"),
    (["simulate", "--out", "O", "--patients", "0"], "--patients"),
    (["pretrain", "--cohort", "C", "--out", "O", "--batch-size", "0"], "--batch-size"),
    (["pretrain", "--cohort", "C", "--out", "O", "--batch-size", "10", "--grad-accum", "3"], "--batch-size"),
    (["finetune", "--cohort", "C", "--out", "O", "--epochs", "0"], "--epochs"),
])
def test_settings_out_of_range_are_one_line_errors(args, flag, tmp_path, capsys):
    args = [str(tmp_path / a) if a in ("D", "C", "O", "P") else a for a in args]
    one_line_error(args, capsys, flag)
    assert not (tmp_path / "O").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_cuda_without_gpu(sim_store, sim_cohort, tmp_path, capsys):
    one_line_error(["pretrain", "--cohort", sim_cohort, "--out", tmp_path / "r", *TINY, "--device", "cuda"],
                   capsys, "--device cuda")


# ---------------------------------------------------------------- one line instead of a traceback
def _predictions(sim_cohort, tmp_path, **cols):
    held = pl.read_parquet(sim_cohort / "stays.parquet").filter(pl.col("split") == "heldout")["stay_id"]
    path = tmp_path / "pred.parquet"
    pl.DataFrame({"stay_id": held, "401.1": np.full(len(held), 0.5), **cols}).write_parquet(path)
    return path, len(held)


def test_bad_predictions_files(sim_cohort, tmp_path, capsys):
    path, n = _predictions(sim_cohort, tmp_path)
    scores = np.linspace(0, 1, n)
    scores[3] = np.inf
    pl.read_parquet(path).with_columns(pl.Series("401.1", scores)).write_parquet(path)
    one_line_error(["report", "--cohort", sim_cohort, "--predictions", path, "--out", tmp_path / "r"], capsys,
                   "infinite", "'401.1'")
    ints = pl.read_parquet(path).with_columns(pl.int_range(pl.len()).alias("stay_id"))
    ints.write_parquet(path)
    one_line_error(["report", "--cohort", sim_cohort, "--predictions", path, "--out", tmp_path / "r"], capsys,
                   "stay_id must be text")
    path.write_text("stay_id,401.1\n1,0.5\n")
    one_line_error(["report", "--cohort", sim_cohort, "--predictions", path, "--out", tmp_path / "r"], capsys,
                   "not a Parquet file")
    one_line_error(["report", "--cohort", sim_cohort, "--predictions", tmp_path, "--out", tmp_path / "r"], capsys,
                   "is a folder")
    assert not (tmp_path / "r").exists()


def test_bad_column_map_and_out_under_a_file(sim_data, tmp_path, capsys):
    folder = tmp_path / "cols"
    folder.mkdir()
    one_line_error(["build-cohort", "--data", sim_data, "--out", tmp_path / "c", "--columns", folder], capsys,
                   "is a folder")
    binary = tmp_path / "cols.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    one_line_error(["build-cohort", "--data", sim_data, "--out", tmp_path / "c", "--columns", binary], capsys,
                   "cols.bin")
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line_error(["build-cohort", "--data", sim_data, "--out", afile / "cohort"], capsys, "a file stands")


def test_segment_store_without_manifest(sim_data, sim_cohort, tmp_path, capsys):
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    for name in ("stays.parquet", "labels.parquet", "phecodes.parquet", "manifest.json", "records.parquet"):
        os.symlink(sim_cohort / name, cohort / name)
    (cohort / "segments").mkdir()
    one_line_error(["pretrain", "--cohort", cohort, "--out", tmp_path / "r", *TINY], capsys, "no segment store")
    one_line_error(["extract-segments", "--data", sim_data, "--cohort", cohort], capsys,
                   "not a finished segment store", "--force")


def test_init_of_another_size_or_not_a_run(sim_store, sim_cohort, tmp_path, capsys):
    from encoder.config import pretrain_config as make_config
    from encoder.net1d import Net1D

    other = dataclasses.replace(make_config("demo").ppg, base_filters=32, filter_list=[32, 64, 64, 128, 128, 192])
    state = {f"ppg_encoder.{k}": v for k, v in Net1D(other).state_dict().items()}
    torch.save({"model": state}, tmp_path / "last.pt")
    one_line_error(["finetune", "--cohort", sim_cohort, "--out", tmp_path / "r", "--preset", "demo",
                    "--init", tmp_path / "last.pt"], capsys, "last.pt", "does not match the encoder")
    (tmp_path / "notarun").mkdir()
    one_line_error(["finetune", "--cohort", sim_cohort, "--out", tmp_path / "r", "--preset", "demo",
                    "--init", tmp_path / "notarun"], capsys, "config.json", "--init")
    assert not (tmp_path / "r").exists()


def test_run_all_unknown_key(tmp_path, capsys):
    cfg = tmp_path / "study.toml"
    cfg.write_text('[paths]\ndata = "d"\nwork = "w"\n[build_cohort]\nseeed = 1\n')
    one_line_error(["run-all", "--config", cfg], capsys, "study.toml", "[build_cohort] unknown key 'seeed'")


@pytest.mark.parametrize("table,needle", [
    ('[models.b]\nkind = "svm"\n', "[models.b] kind 'svm'"),
    ('[models.b]\nkind = "features"\nepochs = 3\n', "[models.b] unknown key 'epochs' for kind 'features'"),
    ('[models.b]\ninit = ""\nl2_c = 1.0\n', "[models.b] unknown key 'l2_c' for kind 'finetune'"),
    ('[models."a/b"]\ninit = ""\n', "[models.a/b]: a model name"),
    ('[models.finetune]\ninit = ""\n', "[models.finetune]: a model name"),
    ('[compare]\nsplit = "heldout"\n', "[compare] unknown key 'split'"),
])
def test_run_all_bad_models(tmp_path, capsys, table, needle):
    cfg = tmp_path / "study.toml"
    cfg.write_text('[paths]\ndata = "d"\nwork = "w"\n' + table)
    one_line_error(["run-all", "--config", cfg], capsys, "study.toml", needle)


def test_run_all_notices_changed_inputs(tmp_path):
    from phewas.study import _input_identity

    data = tmp_path / "data"
    data.mkdir()
    (data / "visits.csv").write_text("a\n")
    (data / "pmh.csv").write_text("b\n")
    before = _input_identity(data, None)
    assert _input_identity(data, None) == before
    os.utime(data / "pmh.csv", ns=(1, 1))
    assert _input_identity(data, None) != before


def test_csv_structure_errors_name_the_line(sim_data, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(sim_data / "pmh.csv", data / "pmh.csv")
    os.symlink(sim_data / "waveforms", data / "waveforms")
    lines = (sim_data / "visits.csv").read_text().splitlines()
    (data / "visits.csv").write_text("\n".join(lines[:4] + [lines[4] + ",extra"] + lines[5:]) + "\n")
    one_line_error(["build-cohort", "--data", data, "--out", tmp_path / "c"], capsys, "visits.csv, row 5",
                   "fields")
    (data / "visits.csv").write_text("\n".join(x.replace(",", ";") for x in lines) + "\n")
    one_line_error(["build-cohort", "--data", data, "--out", tmp_path / "c"], capsys, "visits.csv, row 1",
                   "separated by ';'")


# ---------------------------------------------------------------- distributed and packaging
NO_TORCH = """
import sys
class NoTorch:  # as if torch were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
"""


@pytest.mark.slow
def test_training_commands_without_torch_say_how_to_install(tmp_path):
    code = NO_TORCH + ("from phewas.cli import main\n"
                       f"sys.exit(main(['pretrain', '--cohort', {str(tmp_path)!r}, '--out', {str(tmp_path / 'r')!r}]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(err) == 1 and "pip install 'phewas[train]'" in err[0], res.stderr
    # build-cohort and report import no torch
    code = NO_TORCH + "import cohorts.build, reports.report, phewas.study; print('ok')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "ok", res.stderr[-1000:]
