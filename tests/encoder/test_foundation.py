"""PaPaGei-S, PaPaGei-P and Pulse-PPG in this toolkit's classes, against the projects' own model
code: ``tests/fixtures/foundation/make_fixtures.py`` built each project's class (in a throwaway
environment), saved random weights in the project's release format and stored its embeddings of
fixed inputs; our loaders must give the same embeddings. The committed fixtures are small members
of each family (read with ``released_only=False``); ``PHEWAS_FIDELITY_DIR`` names a folder of the
released sizes (``--full``). Named from the command line, a file must hold its family's released
network exactly."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import released_file
from scipy.signal import resample

from encoder import families
from encoder.config import papagei_config, pulseppg_config
from encoder.embed import embed, load_encoder
from encoder.resnet1d import ResNet1D, fourier_resample, poly_resample
from phewas.base.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "foundation"
MODELS = {"papagei_s": ("papagei_s.pt", "PaPaGei-S"), "papagei_p": ("papagei_p.pt", "PaPaGei-P"),
          "pulseppg": ("pulseppg.pkl", "Pulse-PPG")}


def fidelity(folder: Path, name: str, released: bool = False) -> float:
    file, kind = MODELS[name]
    if released:
        model, desc = load_encoder(str(folder / file))
        assert desc["kind"] == kind
    else:
        model, _, desc = families.load(folder / file, released_only=False)
        assert desc["model"] == kind
    if name == "pulseppg":  # the projects' fixtures were fed by the Fourier method
        model.method = "fourier"
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
    assert fidelity(Path(os.environ["PHEWAS_FIDELITY_DIR"]), name, released=True) < 1e-4


def test_released_shapes_have_the_released_parameter_counts():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # PaPaGei-P's 4,993,024 (PaPaGei-S's 5,785,612 less its multi-task heads); Pulse-PPG's 28,497,920
    assert count(ResNet1D(papagei_config())) == 4_993_024
    assert count(ResNet1D(pulseppg_config())) == 28_497_920
    assert ResNet1D(papagei_config())(torch.zeros(2, 1, 1250)).shape == (2, 512)
    assert families.build(pulseppg_config())(torch.zeros(2, 1, 1250)).shape == (2, 512)


def test_families_are_recognised_by_their_layout():
    def family(file):
        return families.recognise(torch.load(FIXTURES / file, weights_only=True)).name
    assert family("pulseppg.pkl") == "pulse-ppg"
    assert family("papagei_s.pt") == "papagei-s" and family("papagei_p.pt") == "papagei-p"
    assert families.recognise({"first_conv.conv.weight": torch.zeros(1)}).name == "anyppg"
    assert families.recognise({"something.else": torch.zeros(1)}) is None


def test_a_mismatched_checkpoint_names_the_file(tmp_path):
    state = torch.load(FIXTURES / "papagei_p.pt", weights_only=True)
    state["basicblock_list.0.conv1.conv.weight"] = torch.zeros(3, 3, 3)
    bad = tmp_path / "broken.pt"
    torch.save(state, bad)
    with pytest.raises(InputError, match="broken.pt.*of another shape"):
        families.load(bad, released_only=False)


@pytest.mark.parametrize("family, drop, needle", [
    ("papagei-p", ["final_bn."], r"missing \(e.g. final_bn.weight\)"),
    ("papagei-p", ["dense."], r"missing \(e.g. dense.weight\)"),
    ("papagei-p", ["basicblock_list.17."], r"missing \(e.g. basicblock_list.17.bn1.weight\)"),
    ("pulse-ppg", ["basicblock_list.11."], r"missing \(e.g. basicblock_list.11"),
])
def test_a_file_short_of_its_released_network_is_one_line(tmp_path, family, drop, needle):
    path = released_file(tmp_path, family, drop)
    for spec in (f"{family}:{path}", str(path)):  # named, and recognised by its layout
        with pytest.raises(InputError, match=f"{path.name}: not .*'s released network: .*{needle}"):
            load_encoder(spec)


def test_a_deeper_network_and_a_small_member_are_refused(tmp_path):
    deeper = released_file(tmp_path, "papagei-p", extra={"basicblock_list.18.bn1.weight": torch.zeros(512)})
    with pytest.raises(InputError, match=r"unexpected \(e.g. basicblock_list.18.bn1.weight\)"):
        load_encoder(f"papagei-p:{deeper}")
    with pytest.raises(InputError, match="papagei_p.pt: not PaPaGei-P's released network: .*of another shape"):
        load_encoder(str(FIXTURES / "papagei_p.pt"))  # the small committed member


def test_a_file_named_as_another_family_is_refused(tmp_path):
    s_file = released_file(tmp_path, "papagei-s")
    with pytest.raises(InputError, match="named papagei-p but holds PaPaGei-S's multi-task heads"):
        load_encoder(f"papagei-p:{s_file}")
    with pytest.raises(InputError, match="named pulse-ppg but holds PaPaGei-S's layout"):
        load_encoder(f"pulse-ppg:{s_file}")
    model, desc = load_encoder(f"papagei-s:{s_file}")
    assert desc["kind"] == "PaPaGei-S" and desc["family"] == "papagei-s"
    assert model(torch.zeros(1, 1, 1250)).shape == (1, 512)
    assert load_encoder(str(s_file))[1]["family"] == "papagei-s"  # recognised without a name
    with pytest.raises(Exception, match="unknown prefix 'papagei'"):
        load_encoder(f"papagei:{s_file}")


def test_pulse_ppg_is_fed_by_its_own_resampling_unless_asked(tmp_path):
    from scipy.signal import resample_poly
    path = released_file(tmp_path, "pulse-ppg")
    poly, desc = load_encoder(f"pulse-ppg:{path}")
    fourier, desc_f = load_encoder(f"pulse-ppg-fourier:{path}")
    assert "resample_poly" in desc["input"] and "Fourier" in desc_f["input"]
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 1, 1250)).astype(np.float32))
    at_50 = torch.from_numpy(resample_poly(x.numpy().astype(np.float64), 2, 5, axis=-1).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(poly(x).numpy(), fourier.encoder(at_50).numpy(), atol=1e-5)
        assert np.abs(poly(x).numpy() - fourier(x).numpy()).max() > 1e-4  # the two conventions differ


@pytest.mark.parametrize("n, fs, to_fs", [(1250, 125.0, 50.0), (1249, 125.0, 50.0), (500, 50.0, 125.0),
                                          (1250, 125.0, 64.0)])
def test_polyphase_resampling_equals_scipy(n, fs, to_fs):
    from fractions import Fraction

    from scipy.signal import resample_poly
    x = np.random.default_rng(0).normal(size=(3, n))
    r = Fraction(to_fs).limit_denominator() / Fraction(fs).limit_denominator()
    ref = resample_poly(x, r.numerator, r.denominator, axis=-1)
    np.testing.assert_allclose(poly_resample(torch.from_numpy(x), fs, to_fs).numpy(), ref, atol=1e-12)


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
    assert desc["key"].startswith("random-papagei-p-3-")  # random:papagei: PaPaGei's network


@pytest.mark.slow
@pytest.mark.parametrize("name", ["papagei-s", "pulse-ppg"])
def test_fine_tuning_from_a_released_model_and_predicting(sim_store, sim_cohort, tmp_path, name):
    """``finetune --init`` a released model's file, then ``predict`` and ``probe --encoder RUN``:
    the run records the family, and every later command rebuilds the same network."""
    import json

    import polars as pl

    from encoder.config import finetune_config
    from encoder.finetune import finetune
    from phewas.cli import main

    run = tmp_path / "run"
    cfg = finetune_config("demo", init=f"{name}:{released_file(tmp_path, name)}", segments_per_stay=2,
                          min_train_positives=3, batch_size=8, epochs=1, warmup_steps=2, evals_per_epoch=1, patience=10)
    finetune(sim_cohort, run, cfg)
    family = json.loads((run / "config.json").read_text())["ppg"]["family"]
    assert family == ("pulse-ppg" if name == "pulse-ppg" else "papagei")
    assert main(["predict", "--run", str(run), "--cohort", str(sim_cohort), "--quiet"]) == 0
    pred = pl.read_parquet(run / "predictions.parquet")
    assert pred.height > 0 and np.isfinite(pred.drop("stay_id", "n_windows").to_numpy()).all()
    model, desc = load_encoder(str(run))
    assert desc["kind"] == "fine-tuning run" and model(torch.zeros(2, 1, 1250)).shape == (2, 512)


def test_run_all_probe_names_encoders_by_file(tmp_path):
    from phewas.study import probe_stage
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
