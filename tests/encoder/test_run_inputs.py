"""A model sees windows of one preprocessing profile: runs record the profile of the store they
trained on, and ``pretrain --init``, ``finetune --init`` and ``predict`` refuse to mix profiles."""

import json
import shutil

import pytest
from helpers import one_line_error

from cohorts import SegmentConfig, extract_segments
from phewas.cli import main


@pytest.fixture(scope="module")
def robust_cohort(sim_data, sim_cohort, tmp_path_factory):
    """The shared cohort with a segment store made by the robust profile."""
    cohort = tmp_path_factory.mktemp("robust") / "cohort"
    shutil.copytree(sim_cohort, cohort, ignore=shutil.ignore_patterns("segments*"))
    extract_segments(sim_data, cohort, SegmentConfig(preprocess="robust", chunk_stays=64), workers=1)
    return cohort


def test_training_on_one_profile_and_using_another_is_one_line(sim_store, sim_cohort, robust_cohort, tmp_path,
                                                               capsys):
    pre = tmp_path / "pre"
    assert main(["pretrain", "--cohort", str(sim_cohort), "--out", str(pre), "--preset", "demo", "--steps", "2",
                 "--batch-size", "16", "--eval-every", "2", "--ecg-from-scratch", "--quiet"]) == 0
    assert json.loads((pre / "inputs.json").read_text())["preprocess"] == "anyppg"
    one_line_error(["finetune", "--cohort", robust_cohort, "--out", tmp_path / "ft", "--preset", "demo",
                    "--init", pre], capsys, "--preprocess robust", "--preprocess anyppg")
    assert not (tmp_path / "ft").exists()
    ft = tmp_path / "ft2"
    assert main(["finetune", "--cohort", str(sim_cohort), "--out", str(ft), "--preset", "demo", "--init", str(pre),
                 "--epochs", "1", "--segments-per-stay", "2", "--min-train-positives", "3", "--quiet"]) == 0
    one_line_error(["predict", "--run", ft, "--cohort", robust_cohort], capsys, "--preprocess robust",
                   "--preprocess anyppg")
