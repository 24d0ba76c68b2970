"""Helpers that several test files share (fixtures live in ``conftest.py``)."""

from __future__ import annotations

from pathlib import Path


def released_file(folder: Path, family: str, drop=(), extra=None) -> Path:
    """Random weights of a family's released network (:mod:`encoder.families`) saved in its
    release format (PaPaGei-S: ``module.`` prefix and a multi-task head; Pulse-PPG: ``{"net": ...}``),
    less the keys starting with ``drop`` and with ``extra`` added."""
    import torch

    from encoder import families

    torch.manual_seed(0)
    net = families.build(families.FAMILIES[family].released())
    state = {k: v for k, v in getattr(net, "encoder", net).state_dict().items() if not k.startswith(tuple(drop))}
    state.update(extra or {})
    if family == "papagei-s":
        state = {f"module.{k}": v for k, v in state.items()} | {"module.expert_layers_0.0.weight": torch.zeros(2)}
    path = Path(folder) / f"{family}-{len(drop)}-{len(extra or {})}.pt"
    torch.save({"net": state, "epoch": 3} if family == "pulse-ppg" else state, path)
    return path


def run_cli(args, capsys):
    """``phewas ARGS --quiet``: its exit status and the lines it printed to stderr."""
    from phewas.cli import main

    rc = main([*map(str, args), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


def one_line_error(args, capsys, *needles):
    """Run the CLI and check it ends in one line holding each of ``needles``, with exit status 2."""
    rc, err = run_cli(args, capsys)
    assert rc == 2 and len(err) == 1, (rc, err)
    for n in needles:
        assert n in err[0], (n, err[0])
    assert "Traceback" not in err[0]
    return err[0]
