import json
import os

import polars as pl
import pytest
import wfdb

from cohorts.wfdb_headers import parse_record_line, scan_headers
from phewas.cli import main


def test_header_parser_matches_wfdb(sim_data):
    records, bad = scan_headers(sim_data / "waveforms", {"ppg": "Pleth", "ecg": "II"}, workers=1)
    assert not bad and records.height > 20
    with_ms = 0
    for rec, fs, n, start in records.select("record", "fs", "n_samples", "start").head(40).iter_rows():
        h = wfdb.rdheader(str(sim_data / "waveforms" / rec))
        assert (h.fs, h.sig_len) == (fs, n)
        assert h.base_datetime == start  # year 2100-2300, past pandas' range
        with_ms += start.microsecond != 0
    assert with_ms > 0


def test_header_parser_rejects_garbage():
    with pytest.raises(ValueError):
        parse_record_line("rec 1 abc 100")
    with pytest.raises(ValueError):
        parse_record_line("# only a comment\n")
    assert parse_record_line("r 1 125/1000(0) 250")[:2] == (125.0, 250)
    assert parse_record_line("r 1 125 250 03:16:07 09/01/2262")[2] == "2262-01-09 03:16:07"


def test_cohort_outputs(sim_cohort, sim_data):
    stays = pl.read_parquet(sim_cohort / "stays.parquet")
    labels = pl.read_parquet(sim_cohort / "labels.parquet")
    phe = pl.read_parquet(sim_cohort / "phecodes.parquet")
    man = json.loads((sim_cohort / "manifest.json").read_text())
    assert stays.columns[:7] == ["stay_id", "patient_id", "age", "sex", "has_ppg", "has_sync_ecg", "split"]
    assert labels.columns[0] == "stay_id" and len(labels.columns) == 1818
    assert labels["427.21"].dtype == pl.Int8 and labels["stay_id"].to_list() == stays["stay_id"].to_list()
    assert set(stays["split"]) <= {"pretrain_train", "pretrain_val", "pretrain_test", "heldout", "excluded"}
    assert man["patients_shared_heldout_pretrain"] == 0
    assert man["inputs"]["visits"]["sha256"] and man["versions"]["polars"]
    # the simulator writes unmapped codes on purpose: they are counted, not lost
    assert man["unmapped_codes"]["total"] > 0
    # phecodes.parquet counts agree with labels.parquet
    held = labels.filter(pl.col("stay_id").is_in(stays.filter(pl.col("split") == "heldout")["stay_id"].implode()))
    row = phe.filter(pl.col("phecode") == "401.1")
    assert row["n_cases_heldout"][0] == (held["401.1"] == 1).sum()
    assert row["n_controls_heldout"][0] == (held["401.1"] == 0).sum()
    # sync flag agrees with the simulator's summary: a sync stay has both channels
    summary = pl.read_csv(sim_data / "waveform_summary.csv", schema_overrides={"CSN": pl.String})
    both = summary.group_by("CSN").len().filter(pl.col("len") == 2)["CSN"]
    assert set(stays.filter(pl.col("has_sync_ecg"))["stay_id"]) <= set(both)


def test_cli_bad_input_one_line_error_nothing_left(sim_data, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    text = (sim_data / "visits.csv").read_text().splitlines()
    cols = text[0].split(",")
    bad = text[3].split(",")
    bad[cols.index("Age")] = "forty"
    (data / "visits.csv").write_text("\n".join(text[:3] + [",".join(bad)] + text[4:]) + "\n")
    os.symlink(sim_data / "pmh.csv", data / "pmh.csv")
    out = tmp_path / "cohort"
    rc = main(["build-cohort", "--data", str(data), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "visits.csv, row 4, column 'Age'" in err[0] and "'forty'" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".cohort*"))


def test_cli_refuses_to_overwrite_without_force(sim_data, sim_cohort, capsys):
    rc = main(["build-cohort", "--data", str(sim_data), "--out", str(sim_cohort), "--quiet"])
    assert rc == 2 and "--force" in capsys.readouterr().err


def test_cli_options_change_labels(sim_data, tmp_path):
    out1, out2 = tmp_path / "c1", tmp_path / "c2"
    assert main(["build-cohort", "--data", str(sim_data), "--out", str(out1), "--quiet", "--workers", "1"]) == 0
    assert main(["build-cohort", "--data", str(sim_data), "--out", str(out2), "--quiet", "--workers", "1",
                 "--min-code-count", "2", "--no-exclusions", "--codes", "all"]) == 0
    m = json.loads((out2 / "manifest.json").read_text())
    assert m["parameters"]["min_code_count"] == 2 and m["parameters"]["exclusions"] is False
    l1 = pl.read_parquet(out1 / "labels.parquet")
    l2 = pl.read_parquet(out2 / "labels.parquet")
    assert not l1.equals(l2)
