"""PaPaGei-S, PaPaGei-P and Pulse-PPG in this toolkit's classes, against the projects' own model
code: ``tests/fixtures/foundation/make_fixtures.py`` built each project's class (in a throwaway
environment), saved random weights in the project's release format and stored its embeddings of
fixed inputs; our loaders must give the same embeddings. The committed fixtures are small members
of each family; ``PHEWAS_FIDELITY_DIR`` names a folder of the released sizes (``--full``)."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import resample

from encoder.embed import embed, load_encoder
from encoder.foundation import build_foundation, family_of
from encoder.resnet1d import ResNet1D, fourier_resample, papagei_config, pulseppg_config
from phewas.base.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "foundation"
MODELS = {"papagei_s": ("papagei_s.pt", "PaPaGei-S"), "papagei_p": ("papagei_p.pt", "PaPaGei-P"),
          "pulseppg": ("pulseppg.pkl", "Pulse-PPG")}


def fidelity(folder: Path, name: str) -> float:
    file, kind = MODELS[name]
    model, desc = load_encoder(str(folder / file))
    assert desc["kind"] == kind
    x = np.load(folder / "inputs.npy")
    ours = embed(model, x, device="cpu", bf16=False)
    expected = np.load(folder / f"expected_{name}.npy")
    assert ours.shape == expected.shape
    return float(np.abs(ours - expected).max())


@pytest.mark.parametrize("name", MODELS)
def test_loaders_give_the_projects_own_embeddings(name):
    # PaPaGei: the same operations in the same order; Pulse-PPG: float32 resampling and instance
    # norm round differently (the projects' code fed scipy's float64 resampling)
    assert fidelity(FIXTURES, name) < 1e-5


@pytest.mark.skipif(not os.environ.get("PHEWAS_FIDELITY_DIR"), reason="set PHEWAS_FIDELITY_DIR to a --full folder")
@pytest.mark.parametrize("name", MODELS)
def test_released_sizes_give_the_projects_own_embeddings(name):
    assert fidelity(Path(os.environ["PHEWAS_FIDELITY_DIR"]), name) < 1e-4


def test_released_shapes_have_the_released_parameter_counts():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # PaPaGei-P's 4,993,024 (PaPaGei-S's 5,785,612 less its multi-task heads); Pulse-PPG's 28,497,920
    assert count(ResNet1D(papagei_config())) == 4_993_024
    assert count(ResNet1D(pulseppg_config())) == 28_497_920
    assert ResNet1D(papagei_config())(torch.zeros(2, 1, 1250)).shape == (2, 512)
    assert build_foundation("pulse-ppg")(torch.zeros(2, 1, 1250)).shape == (2, 512)


def test_families_are_recognised_by_their_layout():
    assert family_of(torch.load(FIXTURES / "pulseppg.pkl", weights_only=True)) == "pulse-ppg"
    assert family_of(torch.load(FIXTURES / "papagei_s.pt", weights_only=True)) == "papagei"
    assert family_of({"first_conv.conv.weight": torch.zeros(1)}) is None  # AnyPPG's Net1D


def test_a_mismatched_checkpoint_names_the_file(tmp_path):
    state = torch.load(FIXTURES / "papagei_p.pt", weights_only=True)
    state["basicblock_list.0.conv1.conv.weight"] = torch.zeros(3, 3, 3)
    bad = tmp_path / "broken.pt"
    torch.save(state, bad)
    with pytest.raises(InputError, match="broken.pt.*wrong shape"):
        load_encoder(str(bad))


@pytest.mark.parametrize("n, m", [(1250, 500), (1249, 500), (1000, 1250), (501, 1250)])
def test_fourier_resampling_equals_scipy(n, m):
    x = np.random.default_rng(0).normal(size=(3, n))
    np.testing.assert_allclose(fourier_resample(torch.from_numpy(x), m).numpy(), resample(x, m, axis=-1),
                               atol=1e-12)


def test_random_weights_of_another_family_are_an_encoder():
    model, desc = load_encoder("random:papagei", seed=3)
    again, _ = load_encoder("random:papagei", seed=3)
    x = np.random.default_rng(1).normal(size=(2, 1250)).astype(np.float32)
    np.testing.assert_array_equal(embed(model, x, device="cpu"), embed(again, x, device="cpu"))
    assert desc["key"] == "random-papagei-3"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["papagei_s", "pulseppg"])
def test_fine_tuning_from_a_released_model_and_predicting(sim_store, sim_cohort, tmp_path, name):
    """``finetune --init`` a released model's file, then ``predict`` and ``probe --encoder RUN``:
    the run records the family, and every later command rebuilds the same network."""
    import json

    import polars as pl

    from encoder.config import finetune_config
    from encoder.finetune import finetune
    from phewas.cli import main

    run = tmp_path / "run"
    cfg = finetune_config("demo", init=str(FIXTURES / MODELS[name][0]), segments_per_stay=4, min_train_positives=3,
                          batch_size=8, epochs=1, warmup_steps=2, evals_per_epoch=1, patience=10)
    finetune(sim_cohort, run, cfg)
    family = json.loads((run / "config.json").read_text())["ppg"]["family"]
    assert family == ("pulse-ppg" if name == "pulseppg" else "papagei")
    assert main(["predict", "--run", str(run), "--cohort", str(sim_cohort), "--quiet"]) == 0
    pred = pl.read_parquet(run / "predictions.parquet")
    assert pred.height > 0 and np.isfinite(pred.drop("stay_id", "n_windows").to_numpy()).all()
    model, desc = load_encoder(str(run))
    assert desc["kind"] == "fine-tuning run" and model(torch.zeros(2, 1, 1250)).shape == (2, 16)


def test_run_all_probe_names_encoders_by_file(tmp_path):
    from phewas.run_all import probe_stage
    config = tmp_path / "study.toml"
    config.write_text("")
    table = {"dataset": "data", "encoders": {"papagei_s": "weights/papagei_s.pt", "pulse": "random:pulse-ppg",
                                             "chronos": "chronos:models/chronos-2", "features": "features"}}
    stage = probe_stage(table, config, tmp_path / "pretrain", tmp_path / "probe")
    assert stage.params["names"] == ["pretrain", "random", "papagei_s", "pulse", "chronos", "features"]
    assert stage.params["encoders"] == [str(tmp_path / "pretrain"), "random", str(tmp_path / "weights/papagei_s.pt"),
                                        "random:pulse-ppg", f"chronos:{tmp_path / 'models/chronos-2'}", "features"]
    listed = probe_stage({"dataset": "data", "encoders": ["random:papagei", "w.pth"]}, config, None, tmp_path / "p")
    assert listed.params["names"] is None and listed.params["encoders"] == ["random", "random:papagei",
                                                                          str(tmp_path / "w.pth")]
