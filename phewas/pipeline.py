"""The pipeline as data: stages, their fingerprints, and the one routine that runs a plan.

A :class:`Stage` says what it is called, which stages' outputs it reads, the manifest that marks
it finished, the settings that shape its output and the call that runs it. :func:`execute` runs
a plan in order, skipping a stage whose output is the one recorded when it last finished with
the same fingerprint, and resuming a resumable stage that was started with the same fingerprint
and did not finish. The fingerprint of a stage chains through the fingerprints of the stages it
reads, the checksums of their output manifests (for a stage that reads no stage, the identity of
its external inputs), its settings (speed-only ones left out), and the toolkit's version and git
commit; the record is ``WORK/run_all.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from phewas.base.io import file_sha256, versions, write_json

log = logging.getLogger("phewas")


@dataclass
class Stage:
    """One step of a plan.

    Attributes
    ----------
    name : str
        Unique in the plan; the key of ``run_all.json``.
    writes : Path
        The manifest that the stage writes last: present and recorded means finished.
    run : callable
        ``run(resume)``: does the work; returns the command's result. A result with ``finished``
        False (a training run stopped before its end) leaves the stage unfinished.
    params : dict
        The settings that shape the output; they enter the fingerprint.
    reads : tuple of str
        The stages whose outputs it reads (earlier in the plan).
    external : callable, optional
        For a stage that reads no stage: the identity of the inputs it reads from outside (files'
        sizes and times, say), computed when its turn comes.
    resumable : bool
        A stage started with the same fingerprint continues where it stopped.
    """

    name: str
    writes: Path
    run: Callable[[bool], object]
    params: dict = field(default_factory=dict)
    reads: tuple[str, ...] = ()
    external: Callable[[], object] | None = None
    resumable: bool = False


def fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def output_identity(path: Path):
    """What identifies an output: its manifest's checksum (None when absent)."""
    return file_sha256(path) if path.is_file() else None


def code_version() -> list:
    """The toolkit's version and git commit (a dirty tree counts as its commit)."""
    v = versions()
    return [v.get("phewas"), (v.get("git_commit") or "").removesuffix("-dirty")]


class RunRecord:
    """``run_all.json``: per stage, its fingerprint, whether it finished, its time and the
    checksum of its output manifest."""

    def __init__(self, work: Path, fresh: bool = False):
        self.path = work / "run_all.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() and not fresh else {}

    def done(self, stage: Stage, fp: str) -> bool:
        s = self.data.get(stage.name, {})
        return (s.get("fingerprint") == fp and s.get("finished", False)
                and s.get("output") is not None and s.get("output") == output_identity(stage.writes))

    def started(self, stage: Stage, fp: str) -> bool:
        return self.data.get(stage.name, {}).get("fingerprint") == fp

    def mark(self, stage: Stage, fp: str, finished: bool, seconds: float | None = None) -> None:
        self.data[stage.name] = {"fingerprint": fp, "finished": finished, "seconds": seconds,
                                 "output": output_identity(stage.writes) if finished else None}
        write_json(self.path, self.data)


@dataclass
class Executed:
    """What :func:`execute` did: each run stage's result and seconds (skipped stages have none)."""

    results: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)


def execute(plan: list[Stage], record: RunRecord, speed_only: set[str] = frozenset()) -> Executed:
    """Run ``plan`` in order, skipping what is up to date (see the module's description)."""
    fps, out = {}, Executed()
    start = fingerprint("start", code_version())
    by_name = {s.name: s for s in plan}
    for stage in plan:
        unknown = [r for r in stage.reads if r not in fps]
        if unknown:
            raise ValueError(f"stage {stage.name!r} reads {unknown}, which no earlier stage writes")
        if stage.reads:
            upstream = [output_identity(by_name[r].writes) for r in stage.reads]
        else:
            upstream = stage.external() if stage.external is not None else None
        fp = fingerprint(*[fps[r] for r in stage.reads] or [start], stage.name,
                         {k: v for k, v in stage.params.items() if k not in speed_only}, upstream)
        fps[stage.name] = fp
        if record.done(stage, fp):
            log.info("%s: up to date, skipped", stage.name)
            continue
        resume = stage.resumable and record.started(stage, fp)
        record.mark(stage, fp, False)
        log.info("%s: %s", stage.name, "resuming" if resume else "running")
        t = time.perf_counter()
        result = stage.run(resume)
        finished = getattr(result, "finished", True)
        out.seconds[stage.name] = round(time.perf_counter() - t, 1)
        out.results[stage.name] = result
        record.mark(stage, fp, finished, out.seconds[stage.name])
    return out
