"""A setting has one name: every field of a command's settings is its flag and its run-all key, and
nothing else is either."""

import argparse
import dataclasses

import pytest

from phewas.base.errors import InputError
from phewas.base.settings import flag_fields, flag_names
from phewas.cli import build_parser
from phewas.command_settings import MODEL_KINDS, command_settings
from phewas.study import load_config

# flags that name a command's inputs and outputs, or how one invocation runs: run-all derives them
# from [paths] and its plan, so they are not settings (and not keys)
NOT_SETTINGS = {
    "simulate": {"out"},
    "build-cohort": {"data", "out"},
    "extract-segments": {"data", "cohort", "shard", "merge"},
    "extract-pairs": {"out", "shard", "merge"},
    "pretrain": {"cohort", "pairs", "out", "resume", "stop_after_steps", "ppg_config", "ecg_config"},
    "finetune": {"cohort", "out", "resume", "stop_after_steps", "ppg_config"},
    "predict": {"run", "cohort"},
    "features": {"cohort", "out"},
    "report": {"cohort", "predictions", "out"},
    "compare": {"cohort", "predictions", "names", "out"},
    "probe": {"names", "out"},
    "simulate-probe": {"out"},
}
EVERY_COMMAND = {"help", "quiet", "force"}


def _dests(command: str) -> dict[str, str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {o: a.dest for a in sub.choices[command]._actions for o in a.option_strings}


def _fields(command: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for cls in command_settings()[command].classes for f in dataclasses.fields(cls)}


def test_every_command_with_settings_is_listed():
    assert set(command_settings()) == set(NOT_SETTINGS)


@pytest.mark.parametrize("command", sorted(NOT_SETTINGS))
def test_flags_are_fields_and_nothing_else(command):
    dests = _dests(command)
    fields = _fields(command)
    flagged = {f.name for cls in command_settings()[command].classes for f in flag_fields(cls)}
    # every field with help text is a flag whose first name is the field's (a second name is an
    # older spelling kept working, or --no-NAME for a setting that is on by default)
    for name in flagged:
        f = fields[name]
        first = flag_names(f)[0]
        assert dests.get(first) == name, (command, first)
        assert first.lstrip("-").removeprefix("no-").replace("-", "_") == name
    # and every flag is a field with help text, or names an input, an output or how to run
    extra = set(dests.values()) - flagged - NOT_SETTINGS[command] - EVERY_COMMAND
    assert not extra, (command, extra)
    assert not NOT_SETTINGS[command] & set(fields), command


def _toml(tmp_path, text: str):
    path = tmp_path / "study.toml"
    path.write_text('[paths]\ndata = "d"\nwork = "w"\n' + text)
    return load_config(path)


def _value(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        value = "x"
    if value is None:
        return '"x"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else repr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}"
    return f'"{value}"'


TABLES = {settings.table: command for command, settings in command_settings().items()
          if settings.table not in (None, "pairs", "models")}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_run_all_keys_are_the_fields_and_nothing_else(tmp_path, table):
    """Each field is accepted in its command's table (one key at a time: load_config checks names,
    the stages check values), a field that belongs to another table is refused here, and so are
    the flags that are not settings."""
    for name, f in _fields(TABLES[table]).items():
        text = f"[{table}]\n{name} = {_value(f)}\n"
        owner = f.metadata.get("table")
        if owner in (None, table):
            assert name in _toml(tmp_path, text)[table]
        else:
            with pytest.raises(InputError, match=f"unknown key '{name}'"):
                _toml(tmp_path, text)
    for name in NOT_SETTINGS[TABLES[table]] | {"not_a_setting"}:
        with pytest.raises(InputError, match=f"unknown key '{name}'"):
            _toml(tmp_path, f'[{table}]\n{name} = "x"\n')


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_model_tables_take_their_commands_settings(tmp_path, kind):
    for name, f in _fields(kind).items():  # a kind is the command that trains and predicts the model
        text = f'[models.other]\nkind = "{kind}"\n{name} = {_value(f)}\n'
        if f.metadata.get("table") in (None, "models"):
            assert _toml(tmp_path, text)["models"]["other"][name] is not None
        else:  # the split is [predict]'s, the heart-rate report's minimum [report]'s
            with pytest.raises(InputError, match=f"unknown key '{name}' for kind"):
                _toml(tmp_path, text)
    with pytest.raises(InputError, match="unknown key 'out'"):
        _toml(tmp_path, f'[models.other]\nkind = "{kind}"\nout = "x"\n')


def test_pair_tables_take_extract_pairs_settings(tmp_path):
    head = '[pairs.src]\nformat = "mesa"\nsource = "s"\n'
    for name, f in _fields("extract-pairs").items():
        if name not in ("format", "source"):
            assert name in _toml(tmp_path, f"{head}{name} = {_value(f)}\n")["pairs"]["src"]
    with pytest.raises(InputError, match="unknown key 'shard'"):
        _toml(tmp_path, head + 'shard = "0/2"\n')
