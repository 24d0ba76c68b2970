import polars as pl
import pytest

from cohorts.columns import load_columns
from cohorts.phecodes import load_phecode_map, normalise_code
from cohorts.tables import read_pmh, read_visits
from phewas.base.errors import InputError

HEADER = "MRN,CSN,Age,Gender,Arrival_time,Dx_ICD9,Dx_ICD10\n"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_normalise_code_variants():
    s = pl.Series(["I48.91", "i4891", " I48.91 ", "V45.81", "e849.0"])
    out = pl.select(normalise_code(pl.lit(s))).to_series().to_list()
    assert out == ["I4891", "I4891", "I4891", "V4581", "E8490"]


def test_phecode_map_rollup_and_systems():
    m = load_phecode_map()
    af = m.icd.filter((pl.col("system") == "10") & (pl.col("code") == "I4891"))["phecode"].to_list()
    assert sorted(af) == ["427", "427.2", "427.21"]
    # ICD-9 V45.81 and the (nonexistent-as-ICD-10) spelling must not be confused
    assert m.icd.filter((pl.col("system") == "10") & (pl.col("code") == "V4581")).height == 0
    assert m.icd.filter((pl.col("system") == "9") & (pl.col("code") == "V4581")).height > 0
    assert m.phecodes.height == 1817
    assert m.phecodes.filter(pl.col("phecode") == "185")["sex"][0] == "M"


def test_read_visits_far_future_dates(tmp_path):
    p = write(tmp_path, "visits.csv", HEADER + "7,100,40,F,2301-05-02T10:11:12Z,,I10\n"
              "7,101,41,m,2262-04-12T00:00:00.250Z,786.50,\n")
    v = read_visits(p, load_columns())
    assert v["arrival"].dt.year().to_list() == [2301, 2262]
    assert v["sex"].to_list() == ["F", "M"]
    assert v["arrival"][1].microsecond == 250000


@pytest.mark.parametrize("row,column,needle", [
    ("7,100,abc,F,2262-01-09T03:16:07Z,,I10\n", "Age", "row 2, column 'Age'"),
    ("7,100,40,Q,2262-01-09T03:16:07Z,,I10\n", "Gender", "row 2, column 'Gender'"),
    ("7,100,40,F,yesterday,,I10\n", "Arrival_time", "row 2, column 'Arrival_time'"),
    ("7,,40,F,2262-01-09T03:16:07Z,,I10\n", "CSN", "row 2, column 'CSN'"),
])
def test_read_visits_bad_cells_name_file_row_column(tmp_path, row, column, needle):
    p = write(tmp_path, "visits.csv", HEADER + row)
    with pytest.raises(InputError) as err:
        read_visits(p, load_columns())
    msg = str(err.value)
    assert str(p) in msg and needle in msg and "\n" not in msg


def test_duplicate_visit_is_an_error(tmp_path):
    p = write(tmp_path, "visits.csv", HEADER + "7,100,40,F,2262-01-09T03:16:07Z,,I10\n"
              "8,100,41,F,2262-01-09T03:16:07Z,,I10\n")
    with pytest.raises(InputError, match="row 3"):
        read_visits(p, load_columns())


def test_missing_column_lists_found_columns(tmp_path):
    p = write(tmp_path, "visits.csv", "MRN,CSN,Age_years\n1,2,3\n")
    with pytest.raises(InputError, match=r"missing column 'Age' .*visits.age.*columns found: MRN, CSN, Age_years"):
        read_visits(p, load_columns())


def test_column_map_renames_and_rejects_unknown_keys(tmp_path):
    cols = write(tmp_path, "cols.toml", '[visits]\nage = "Age_years"\n[pmh.code_types]\nicd9 = ["ICD-9-CM"]\n')
    p = write(tmp_path, "visits.csv", "MRN,CSN,Age_years,Gender,Arrival_time,Dx_ICD9,Dx_ICD10\n"
              "1,2,33,F,2262-01-09T03:16:07Z,,I10\n")
    assert read_visits(p, load_columns(cols))["age"].to_list() == [33]
    bad = write(tmp_path, "bad.toml", '[visits]\nagee = "x"\n')
    with pytest.raises(InputError, match="unknown column-map key 'visits.agee'"):
        load_columns(bad)


def test_read_pmh_code_types_and_dates(tmp_path):
    rows = "7,2262-01-09T00:00:00Z,Dx10,I10,,,\n7,,Dx9,4019,,,\n" + "8,2262-01-09,icd10cm,E119,,,\n" * 18
    p = write(tmp_path, "pmh.csv", "MRN,Noted_date,CodeType,Code,Desc10,CCS,DescCCS\n" + rows
              + "7,2262-01-09,Weird,X,,,\n")
    codes, dropped = read_pmh(p, load_columns())
    assert codes["system"].to_list() == ["10", "9"] + ["10"] * 18  # ICD10CM accepted by default
    assert codes["noted"].null_count() == 1
    # 1 of 21 rows (4.8%): dropped and counted, not fatal
    assert dropped["unknown_code_type"] == {"Weird": 1} and dropped["undated"] == 1
    bad = write(tmp_path, "bad.csv", "MRN,Noted_date,CodeType,Code\n7,not-a-date,Dx10,I10\n")
    with pytest.raises(InputError, match="row 2, column 'Noted_date'"):
        read_pmh(bad, load_columns())


@pytest.mark.parametrize("spelling", ["Dx9", "dx10", "ICD9", "ICD10", "ICD9CM", "ICD10CM", "ICD-9-CM",
                                      "icd-10-cm", " ICD10CM "])
def test_common_code_type_spellings_are_accepted(tmp_path, spelling):
    p = write(tmp_path, "pmh.csv", f"MRN,Noted_date,CodeType,Code\n7,2262-01-09,{spelling},I10\n")
    codes, dropped = read_pmh(p, load_columns())
    assert codes.height == 1 and not dropped["unknown_code_type"]
    assert codes["system"][0] == ("9" if "9" in spelling else "10")


def test_unknown_code_types_above_5_percent_are_an_error(tmp_path):
    p = write(tmp_path, "pmh.csv", "MRN,Noted_date,CodeType,Code\n"
              + "7,2262-01-09,ICD10-CM-X,I10\n" * 30 + "7,2262-01-09,Dx10,I10\n" * 60
              + "7,2262-01-09,SNOMED,1234\n" * 10)
    with pytest.raises(InputError) as err:
        read_pmh(p, load_columns())
    msg = str(err.value)
    assert msg.startswith(f"{p}, column 'CodeType': 40 of 100 rows (40.0%)") and "\n" not in msg
    assert "'ICD10-CM-X' (30), 'SNOMED' (10)" in msg and "pmh.code_types.icd10" in msg


def test_column_map_fixes_code_types_and_rejects_one_value_under_both(tmp_path):
    p = write(tmp_path, "pmh.csv", "MRN,Noted_date,CodeType,Code\n7,2262-01-09,ICD10-CM-X,I10\n")
    cols = write(tmp_path, "cols.toml", '[pmh.code_types]\nicd10 = ["Dx10", "ICD10-CM-X"]\n')
    codes, _ = read_pmh(p, load_columns(cols))
    assert codes["system"].to_list() == ["10"]
    both = write(tmp_path, "both.toml", '[pmh.code_types]\nicd9 = ["Dx9", "ICD"]\nicd10 = ["icd"]\n')
    with pytest.raises(InputError, match=r"both.toml: column map lists code type 'icd' under both"):
        load_columns(both)


def test_only_needed_columns_are_read_and_bad_bytes_elsewhere_are_ignored(tmp_path):
    p = tmp_path / "pmh.csv"
    p.write_bytes(b"MRN,Noted_date,CodeType,Code,Desc10\n7,2262-01-09,Dx10,I10,caf\xe9 \xff\n")
    codes, _ = read_pmh(p, load_columns())
    assert codes["code"].to_list() == ["I10"]
