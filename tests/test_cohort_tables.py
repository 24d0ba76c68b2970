import polars as pl
import pytest

from cohorts.columns import load_columns
from cohorts.phecodes import load_phecode_map, normalise_code
from cohorts.tables import read_pmh, read_visits
from phewas.errors import InputError

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
    p = write(tmp_path, "pmh.csv", "MRN,Noted_date,CodeType,Code,Desc10,CCS,DescCCS\n"
              "7,2262-01-09T00:00:00Z,Dx10,I10,,,\n7,,Dx9,4019,,,\n7,2262-01-09,Weird,X,,,\n")
    codes, dropped = read_pmh(p, load_columns())
    assert codes["system"].to_list() == ["10", "9"]
    assert codes["noted"].null_count() == 1
    assert dropped["unknown_code_type"] == {"Weird": 1} and dropped["undated"] == 1
    bad = write(tmp_path, "bad.csv", "MRN,Noted_date,CodeType,Code\n7,not-a-date,Dx10,I10\n")
    with pytest.raises(InputError, match="row 2, column 'Noted_date'"):
        read_pmh(bad, load_columns())
