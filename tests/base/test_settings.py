"""One name per setting: flags are generated from the config dataclasses."""

import argparse
import dataclasses
import logging

import pytest

from cohorts.build import CohortConfig
from cohorts.segments import SegmentConfig
from cohorts.sim.population import PopulationConfig
from encoder.config import FinetuneConfig, PretrainConfig
from phewas.base.errors import SettingError
from phewas.base.settings import flag_fields, flag_names, renamed
from phewas.cli import build_parser, main
from reports.report import ReportConfig

COMMANDS = {"simulate": PopulationConfig, "build-cohort": CohortConfig, "extract-segments": SegmentConfig,
            "report": ReportConfig, "pretrain": PretrainConfig, "finetune": FinetuneConfig}


def _subparser(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_flagged_field_is_a_flag_of_its_name(command):
    cls = COMMANDS[command]
    options = {o: a.dest for a in _subparser(command)._actions for o in a.option_strings}
    for f in flag_fields(cls):
        for flag in flag_names(f):
            assert options.get(flag) == f.name, (command, flag)
            # the flag is the field's name, or --no- and the name for a setting that is on by default
            assert flag.lstrip("-").removeprefix("no-").replace("-", "_") == f.name


def test_flags_that_users_rely_on_still_exist():
    """The contract: the flags that users and the docs rely on, by command."""
    expected = {
        "build-cohort": {"--min-ppg-seconds", "--min-overlap-seconds", "--no-exclusions", "--codes",
                         "--min-code-count", "--allow-no-waveforms", "--workers", "--seed", "--phecodes"},
        "report": {"--min-positives", "--thresholds", "--no-association", "--age-df", "--age-sex-interaction",
                   "--include-stays-without-windows", "--workers", "--alpha", "--folds", "--split"},
        "pretrain": {"--no-bf16", "--compile", "--cache-ecg", "--no-cache-ecg", "--ecg-checkpoint", "--steps",
                     "--stop-after-steps", "--batch-size", "--grad-accum", "--device", "--ppg-config"},
        "finetune": {"--init", "--segments-per-stay", "--min-train-positives", "--aggregation", "--pos-weight",
                     "--encoder-lr", "--patience", "--epochs", "--stop-after-steps", "--resume"},
        "extract-segments": {"--per-stay", "--max-pairs-per-stay", "--notch-hz", "--max-invalid", "--shard",
                             "--merge"},
        "simulate": {"--patients", "--minutes", "--injected-prevalence-scale", "--hard", "--world-seed"},
        "compare": {"--cohort", "--predictions", "--names", "--out", "--min-positives", "--alpha", "--split",
                    "--include-stays-without-windows"},
        "features": {"--cohort", "--out", "--split", "--min-train-positives", "--l2-c", "--workers",
                     "--min-positives"},
    }
    for command, flags in expected.items():
        have = {o for a in _subparser(command)._actions for o in a.option_strings}
        assert flags <= have, (command, flags - have)


def test_flags_reach_the_config(tmp_path):
    a = build_parser().parse_args(["build-cohort", "--data", "d", "--out", "o", "--min-ppg-seconds", "30",
                                   "--no-exclusions", "--codes", "all"])
    from phewas.base.settings import from_args
    cfg = CohortConfig(**from_args(a, CohortConfig))
    assert (cfg.min_ppg_seconds, cfg.exclusions, cfg.codes) == (30.0, False, "all")
    a = build_parser().parse_args(["pretrain", "--cohort", "c", "--out", "o", "--no-bf16", "--steps", "7"])
    got = from_args(a, PretrainConfig)
    assert got["bf16"] is False and got["steps"] == 7 and got["lr"] is None  # None: the preset's value


def test_help_is_for_users(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "Only this module prints" not in out and "phecode" in out


def test_old_toml_keys_are_renamed_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        out = renamed({"min_ppg_s": 20.0, "seed": 1}, {"min_ppg_s": "min_ppg_seconds"}, "study.toml [build_cohort]")
    assert out == {"min_ppg_seconds": 20.0, "seed": 1}
    assert len(caplog.records) == 1 and "'min_ppg_s' is deprecated; use 'min_ppg_seconds'" in caplog.text
    with pytest.raises(SettingError, match="both"):
        renamed({"min_ppg_s": 1, "min_ppg_seconds": 2}, {"min_ppg_s": "min_ppg_seconds"}, "x")


def test_run_all_reads_old_keys(tmp_path, caplog):
    from phewas.study import load_config
    cfg = tmp_path / "study.toml"
    cfg.write_text('[paths]\ndata = "d"\nwork = "w"\n[build_cohort]\nmin_overlap_s = 30.0\n')
    with caplog.at_level(logging.WARNING):
        loaded = load_config(cfg)
    assert loaded["build_cohort"] == {"min_overlap_seconds": 30.0} and "deprecated" in caplog.text
    CohortConfig(**loaded["build_cohort"])  # the key is a field


def test_config_fields_are_run_all_keys():
    from phewas.study import _table_keys
    keys = _table_keys()
    for table, cls in (("build_cohort", CohortConfig), ("extract_segments", SegmentConfig),
                       ("pretrain", PretrainConfig), ("finetune", FinetuneConfig), ("simulate", PopulationConfig)):
        assert {f.name for f in dataclasses.fields(cls)} <= keys[table], table
