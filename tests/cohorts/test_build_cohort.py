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


# ---------------------------------------------------------------- real-row patterns
def _raw_rows(data):
    """visits.csv and pmh.csv read with the csv module, for the slow reference."""
    import csv
    import datetime as dt

    def when(text):
        return dt.datetime.fromisoformat(text.replace("Z", "")) if text else None

    with open(data / "visits.csv", newline="") as f:
        visits = list(csv.DictReader(f))
    with open(data / "pmh.csv", newline="") as f:
        pmh = list(csv.DictReader(f))
    stays = [(v["CSN"], v["MRN"], v["Gender"], when(v["Arrival_time"])) for v in visits]
    dx = [(v["CSN"], sys_, v[col]) for v in visits for col, sys_ in (("Dx_ICD9", "9"), ("Dx_ICD10", "10"))
          if v[col]]
    hist = [(r["MRN"], "9" if r["CodeType"] == "Dx9" else "10", r["Code"], when(r["Noted_date"]))
            for r in pmh]
    return stays, dx, hist


def test_simulator_writes_the_patterns_of_real_rows(sim_data, sim_cohort):
    stays, dx, hist = _raw_rows(sim_data)
    assert sum(n is None for *_, n in hist) > 0  # undated history rows
    days = [(p, a.date()) for _, p, _, a in stays]
    assert len(days) > len(set(days))  # same-day revisits
    by_stay = {}
    for s, system, _ in dx:
        by_stay.setdefault(s, set()).add(system)
    assert sum(len(v) == 2 for v in by_stay.values()) > len(stays) / 3  # dual-coded visits
    man = json.loads((sim_cohort / "manifest.json").read_text())
    assert man["counts"]["history_rows_undated"] > 0
    assert man["counts"]["label_cells_nulled_by_undated_history"] > 0
    assert man["label_rules"]["count"].startswith("distinct calendar days")


def test_cohort_labels_equal_slow_reference_on_simulated_rows(sim_data, sim_cohort):
    """build-cohort end to end (CSV reading included) against the per-patient loop."""
    from reference_labels import slow_labels, slow_map

    stays, dx, hist = _raw_rows(sim_data)
    slow = slow_labels(stays, dx, hist, "visit", 1, True)
    labels = pl.read_parquet(sim_cohort / "labels.parquet")
    codes = labels.columns[1:]
    fast = labels.fill_null(-1)
    assert fast.height == len(stays)
    n_case = 0
    for row in fast.iter_rows():
        want = slow[row[0]]
        assert list(row[1:]) == [want[c] for c in codes], row[0]
        n_case += sum(v == 1 for v in row[1:])
    assert n_case > 200
    # a disease first coded at a visit: control before it, case from that visit on
    own = {}
    for s, system, cell in dx:
        own.setdefault(s, set()).update(slow_map(system, cell))
    first_at_visit = carried = 0
    for pid in {p for _, p, _, _ in stays}:
        mine = [s for _, s in sorted((a, s) for s, p, _, a in stays if p == pid)]
        for s0, s1, *later in zip(mine, mine[1:], mine[2:] + [None]):
            new = {c for c in own.get(s1, ()) if slow[s0][c] == 0 and slow[s1][c] == 1}
            first_at_visit += len(new)
            carried += sum(slow[later[0]][c] == 1 for c in new) if later[0] else 0
    assert first_at_visit > 0 and carried > 0


def _copy_tables(sim_data, dest):
    dest.mkdir()
    for name in ("visits.csv", "pmh.csv"):
        os.symlink(sim_data / name, dest / name)


def test_missing_waveform_folder_is_an_error_unless_allowed(sim_data, tmp_path, capsys):
    data = tmp_path / "data"
    _copy_tables(sim_data, data)
    out = tmp_path / "cohort"
    rc = main(["build-cohort", "--data", str(data), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "waveforms" in err[0] and "--allow-no-waveforms" in err[0]
    assert not out.exists()
    # a misnamed channel folder finds no PPG: also an error
    os.symlink(sim_data / "waveforms", data / "waveforms")
    cols = tmp_path / "cols.toml"
    cols.write_text('[waveforms]\nppg = "PLETH"\n')
    rc = main(["build-cohort", "--data", str(data), "--out", str(out), "--quiet", "--columns", str(cols)])
    assert rc == 2 and "no PPG record" in capsys.readouterr().err and not out.exists()
    os.unlink(data / "waveforms")
    rc = main(["build-cohort", "--data", str(data), "--out", str(out), "--quiet", "--allow-no-waveforms"])
    assert rc == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["waveforms"].startswith("absent") and man["parameters"]["allow_no_waveforms"] is True
    assert set(pl.read_parquet(out / "stays.parquet")["split"]) == {"excluded"}


def test_code_type_spellings_give_the_same_labels_and_unknown_ones_fail(sim_data, sim_cohort, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(sim_data / "visits.csv", data / "visits.csv")
    os.symlink(sim_data / "waveforms", data / "waveforms")
    pmh = pl.read_csv(sim_data / "pmh.csv", infer_schema_length=0)
    pmh.with_columns(pl.col("CodeType").replace({"Dx10": "ICD10CM", "Dx9": "ICD-9-CM"})).write_csv(data / "pmh.csv")
    out = tmp_path / "c1"
    assert main(["build-cohort", "--data", str(data), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    assert pl.read_parquet(out / "labels.parquet").equals(pl.read_parquet(sim_cohort / "labels.parquet"))
    pmh.with_columns(pl.col("CodeType").replace({"Dx10": "ICD10-X"})).write_csv(data / "pmh.csv")
    rc = main(["build-cohort", "--data", str(data), "--out", str(tmp_path / "c2"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "pmh.csv, column 'CodeType'" in err[0] and "'ICD10-X' (" in err[0] and "pmh.code_types" in err[0]
    assert not (tmp_path / "c2").exists()
