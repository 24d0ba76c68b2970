"""The Python API (``phewas/api.py``) and the command line are one code path: each API function and
the matching command, on the same inputs into the same folder, write the same files byte for byte
(manifests apart from their time and command line). And the result objects: tables, loaders,
figures that display inline, errors with the command line's messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from helpers import pulse, run_cli, write_edf

import phewas
from phewas import api
from phewas.base.errors import OutputExistsError, PhewasError, SettingError

VOLATILE = {"created", "argv"}  # the manifest's own time and command line


def snapshot(folder: Path, skip=()) -> dict:
    """Every file's bytes (manifests without their time and command line), by relative path."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if not p.is_file() or any(rel.startswith(s) or p.name == s for s in skip):
            continue
        if p.name.endswith("manifest.json"):
            out[rel] = {k: v for k, v in json.loads(p.read_text()).items() if k not in VOLATILE}
        else:
            out[rel] = p.read_bytes()
    return out


def same_as_cli(out: Path, call, args, capsys, skip=()) -> None:
    """``call()`` (the API) writes ``out``; it is set aside and ``phewas ARGS`` writes ``out``
    again: the two are the same, file by file."""
    call()
    first = snapshot(out, skip)
    kept = out.with_name(out.name + ".api")
    shutil.move(out, kept)
    rc, err = run_cli(args, capsys)
    assert rc == 0, err
    second = snapshot(out, skip)
    assert first.keys() == second.keys()
    for k in first:
        assert first[k] == second[k], k
    assert first  # something was compared


def test_simulate_build_cohort_extract_segments(tmp_path, capsys):
    data = tmp_path / "data"
    same_as_cli(data, lambda: phewas.simulate(out=data, patients=40, seed=5, minutes=1.0, workers=1, quiet=True),
                ["simulate", "--out", data, "--patients", "40", "--seed", "5", "--minutes", "1.0", "--workers", "1"],
                capsys)
    cohort = tmp_path / "cohort"
    same_as_cli(cohort, lambda: phewas.build_cohort(data=data, out=cohort, seed=1, workers=1, quiet=True),
                ["build-cohort", "--data", data, "--out", cohort, "--seed", "1", "--workers", "1"], capsys)
    segments = cohort / "segments"

    def extract():
        return phewas.extract_segments(cohort=cohort, data=data, workers=1, per_stay=5, quiet=True)
    extract()
    first = snapshot(segments)
    shutil.rmtree(segments)
    assert run_cli(["extract-segments", "--cohort", cohort, "--data", data, "--workers", "1", "--per-stay", "5"],
                   capsys)[0] == 0
    assert snapshot(segments) == first
    c = phewas.load_cohort(cohort)
    assert c.stays.height == c.counts["visits"] and {"stay_id", "split"} <= set(c.stays.columns)


def test_features_report_compare(sim_store, sim_cohort, tmp_path, capsys):
    runs = {}
    for k, c in enumerate((1.0, 0.01)):  # two models: two penalties
        run = tmp_path / f"features{k}"
        same_as_cli(run, lambda run=run, c=c: phewas.features(cohort=sim_cohort, out=run, min_positives=3, l2_c=c,
                                                              quiet=True),
                    ["features", "--cohort", sim_cohort, "--out", run, "--min-positives", "3", "--l2-c", str(c)],
                    capsys)
        runs[k] = run / "predictions.parquet"
    rep = tmp_path / "report"
    same_as_cli(rep, lambda: phewas.report(cohort=sim_cohort, predictions=runs[0], out=rep, min_positives=3,
                                           quiet=True),
                ["report", "--cohort", sim_cohort, "--predictions", runs[0], "--out", rep, "--min-positives", "3"],
                capsys)
    cmp = tmp_path / "compare"
    same_as_cli(cmp, lambda: phewas.compare(cohort=sim_cohort, predictions=[runs[0], runs[1]], out=cmp,
                                            names=["a", "b"], min_positives=3, quiet=True),
                ["compare", "--cohort", sim_cohort, "--predictions", runs[0], runs[1], "--out", cmp, "--names", "a",
                 "b", "--min-positives", "3"], capsys)
    # the results as a notebook holds them
    r = phewas.load_report(rep)
    assert r.table.height == r.summary["n_phenotypes"] and "auc" in r.table.columns
    assert isinstance(r.table.to_pandas().iloc[0]["auc"], float)
    from matplotlib.figure import Figure
    phecode = r.table.sort("auc", descending=True)["phecode"][0]
    for fig in (r.manhattan(), r.association(), r.volcano(), r.forest(), r.chapters_figure(), r.roc(phecode)):
        assert isinstance(fig, Figure) and fig.axes
    with pytest.raises(SettingError, match="phecode 'nope'"):
        r.roc("nope")
    c = phewas.load_compare(cmp)
    assert set(c.table["model_a"]) == {"a"} and isinstance(c.scatter(), Figure) and isinstance(c.roc(phecode), Figure)


@pytest.mark.slow
def test_pretrain_finetune_predict(sim_store, sim_cohort, tmp_path, capsys):
    pre = tmp_path / "pretrain"
    flags = {"steps": 3, "batch_size": 16, "eval_every": 3, "checkpoint_every": 3, "retrieval_batch": 8,
             "warmup_steps": 1}
    phewas.pretrain(out=pre, cohort=sim_cohort, preset="demo", quiet=True, **flags)
    shutil.move(pre, tmp_path / "pre.api")
    cli = ["pretrain", "--cohort", sim_cohort, "--out", pre, "--preset", "demo"]
    for k, v in flags.items():
        cli += [f"--{k.replace('_', '-')}", str(v)]
    assert run_cli(cli, capsys)[0] == 0
    a = torch.load(tmp_path / "pre.api" / "ppg_encoder.pth", weights_only=True)
    b = torch.load(pre / "ppg_encoder.pth", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "pre.api" / "retrieval.csv").read_bytes() == (pre / "retrieval.csv").read_bytes()
    run = phewas.load_run(pre)
    assert run.finished and run.retrieval["source"].to_list() == ["mcmed"] and run.metrics.height > 0
    ft = tmp_path / "finetune"
    tune = {"epochs": 1, "batch_size": 8, "segments_per_stay": 4, "min_train_positives": 3, "warmup_steps": 1}

    def finetune_and_predict():
        phewas.finetune(cohort=sim_cohort, out=ft, preset="demo", init=str(pre), quiet=True, **tune)
        return phewas.predict(run=ft, cohort=sim_cohort, quiet=True)
    p = finetune_and_predict()
    assert p.table.height == p.counts.get("stays", p.table.height)
    kept = pl.read_parquet(ft / "predictions.parquet")
    shutil.rmtree(ft)
    cli = ["finetune", "--cohort", sim_cohort, "--out", ft, "--preset", "demo", "--init", pre]
    for k, v in tune.items():
        cli += [f"--{k.replace('_', '-')}", str(v)]
    assert run_cli(cli, capsys)[0] == 0
    assert run_cli(["predict", "--run", ft, "--cohort", sim_cohort], capsys)[0] == 0
    assert pl.read_parquet(ft / "predictions.parquet").equals(kept)


@pytest.mark.slow
def test_probe_datasets_and_pairs(tmp_path, capsys):
    ds = tmp_path / "probe-data"
    same_as_cli(ds, lambda: phewas.simulate_probe(out=ds, subjects=8, seed=2, quiet=True),
                ["simulate-probe", "--out", ds, "--subjects", "8", "--seed", "2"], capsys)
    out = tmp_path / "probe"
    same_as_cli(out, lambda: phewas.probe(dataset=ds, encoder="features", out=out, bootstrap=20, folds=2,
                                          paper="none", quiet=True),
                ["probe", "--dataset", ds, "--encoder", "features", "--out", out, "--bootstrap", "20", "--folds", "2",
                 "--paper", "none"], capsys, skip=("cache",))
    pr = phewas.load_probe(out)
    assert set(pr.table["encoder"]) == {"features", "constant"} and pr.figure().axes and pr.pairs.height
    again = tmp_path / "probe-again"  # encoders=, the flag's and the run-all key's name, gives the same
    phewas.probe(dataset=ds, encoders=["features"], out=again, bootstrap=20, folds=2, paper="none", quiet=True)
    assert pl.read_csv(again / "probe.csv").equals(pl.read_csv(out / "probe.csv"))
    with pytest.raises(SettingError, match="once"):
        phewas.probe(dataset=ds, encoders=["features"], encoder="random", out=tmp_path / "x", quiet=True)
    # a public layout written here: TROIKA
    import scipy.io
    src = tmp_path / "troika"
    src.mkdir()
    ppg = pulse(30, 125, 100)
    scipy.io.savemat(src / "DATA_01_TYPE01.mat", {"sig": np.vstack([ppg * 0, ppg, ppg, *np.zeros((3, len(ppg)))])})
    scipy.io.savemat(src / "DATA_01_TYPE01_BPMtrace.mat", {"BPM0": np.full((12, 1), 100.0)})
    conv = tmp_path / "converted"
    same_as_cli(conv, lambda: phewas.convert_dataset(format="troika", source=src, out=conv, quiet=True),
                ["convert-dataset", "--format", "troika", "--source", src, "--out", conv], capsys)
    assert phewas.api.Dataset(conv, {}).labels.height == 12
    mesa = tmp_path / "mesa"
    e, p = pulse(120, 256, 70, 1), pulse(120, 256, 70, 2)
    write_edf(mesa / "mesa-sleep-0001.edf", [("EKG", e, 256, "mV"), ("Pleth", p, 256, "")])
    pairs = tmp_path / "pairs"
    same_as_cli(pairs, lambda: phewas.extract_pairs(format="mesa", source=mesa, out=pairs, workers=1,
                                                    preprocess="robust", quiet=True),
                ["extract-pairs", "--format", "mesa", "--source", mesa, "--out", pairs, "--workers", "1",
                 "--preprocess", "robust"], capsys)


def test_errors_are_exceptions_with_the_command_lines_messages(tmp_path, capsys):
    with pytest.raises(SettingError, match="build-cohort: unknown setting 'min_ppg_s'; known: .*min_ppg_seconds"):
        phewas.build_cohort(data=tmp_path, out=tmp_path / "c", min_ppg_s=60)
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError) as err:
        phewas.simulate_probe(out=tmp_path / "out")
    rc, lines = run_cli(["simulate-probe", "--out", tmp_path / "out"], capsys)
    assert rc == 2 and lines == [f"phewas simulate-probe: error: {err.value}"]
    with pytest.raises(PhewasError, match="per-stay: must be at least 1"):
        phewas.extract_segments(cohort=tmp_path, data=tmp_path, per_stay=0)
    assert capsys.readouterr().out == ""  # nothing printed


def test_every_command_has_its_api_function():
    from phewas.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for command in sub.choices:
        assert hasattr(api, command.replace("-", "_")), command
    for name in phewas.API:
        assert getattr(phewas, name) is getattr(api, name)
        doc = getattr(api, name).__doc__
        assert doc and ("Parameters" in doc or name.startswith("load_")), name
