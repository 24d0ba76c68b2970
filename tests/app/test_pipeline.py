"""The pipeline's skipping and resuming (``phewas/pipeline.py``), on fake stages that write a small
manifest: what is up to date is skipped, a change reruns its stage and those that read it (and
nothing else), an unfinished resumable stage resumes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from phewas.pipeline import RunRecord, Stage, execute


@dataclass
class Result:
    finished: bool = True


class Fake:
    """Stages that count their runs and write ``NAME/manifest.json`` holding their settings."""

    def __init__(self, work: Path):
        self.work, self.calls = work, []
        self.stop_early: set[str] = set()  # stages whose next run stops before its end
        self.source = {"size": 1}  # what the first stage reads from outside
        self.stamped = False  # outputs that differ at each run (a manifest's time) or not

    def stage(self, name: str, reads=(), resumable=False, **params) -> Stage:
        writes = self.work / name / "manifest.json"

        def run(resume: bool):
            self.calls.append((name, resume))
            writes.parent.mkdir(parents=True, exist_ok=True)
            if name in self.stop_early:
                self.stop_early.discard(name)
                return Result(finished=False)
            stamp = {"run": len(self.calls)} if self.stamped else {}
            writes.write_text(json.dumps({"stage": name, **params, **stamp}))
            return Result()
        return Stage(name, writes, run, params=params, reads=tuple(reads), resumable=resumable,
                     external=(lambda: dict(self.source)) if not reads else None)

    def plan(self, a_param=1, b_workers=1, c_param=1, b_resumable=False):
        return [self.stage("a", param=a_param),
                self.stage("b", reads=["a"], resumable=b_resumable, workers=b_workers),
                self.stage("c", reads=["a"], param=c_param),
                self.stage("d", reads=["b", "c"])]

    def run(self, **kw) -> list[tuple[str, bool]]:
        self.calls = []
        execute(self.plan(**kw), RunRecord(self.work), speed_only={"workers"})
        return self.calls


@pytest.fixture
def fake(tmp_path):
    return Fake(tmp_path)


def test_a_second_run_skips_every_finished_stage(fake):
    assert fake.run() == [("a", False), ("b", False), ("c", False), ("d", False)]
    assert fake.run() == []


def test_a_changed_setting_reruns_its_stage_and_those_downstream_only(fake):
    fake.run()
    assert [n for n, _ in fake.run(c_param=2)] == ["c", "d"]
    assert [n for n, _ in fake.run(c_param=2, a_param=5)] == ["a", "b", "c", "d"]


def test_a_speed_only_setting_changes_nothing(fake):
    fake.run()
    assert fake.run(b_workers=8) == []


def test_a_changed_input_reruns_everything_it_feeds(fake):
    fake.run()
    fake.source["size"] = 2  # the outside input of the first stage
    assert [n for n, _ in fake.run()] == ["a", "b", "c", "d"]


def test_an_output_changed_or_deleted_is_made_again_and_its_readers_follow_its_content(fake):
    """Outputs are identified by content: a stage made again with the same output leaves its
    readers up to date; with another output (a manifest's new time) they run again."""
    fake.run()
    (fake.work / "b" / "manifest.json").write_text("{}")  # changed by hand
    (fake.work / "c" / "manifest.json").unlink()
    assert [n for n, _ in fake.run()] == ["b", "c"]  # made again, the same as before: d is up to date
    fake.stamped = True
    (fake.work / "c" / "manifest.json").unlink()
    assert [n for n, _ in fake.run()] == ["c", "d"]


def test_an_unfinished_resumable_stage_resumes_and_a_plain_one_restarts(fake):
    fake.stop_early = {"b", "c"}
    assert fake.run(b_resumable=True)[:3] == [("a", False), ("b", False), ("c", False)]
    record = json.loads((fake.work / "run_all.json").read_text())
    assert not record["b"]["finished"] and not record["c"]["finished"] and record["a"]["finished"]
    assert fake.run(b_resumable=True)[:2] == [("b", True), ("c", False)]
    assert fake.run(b_resumable=True) == []


def test_a_stage_reading_an_unknown_stage_is_refused(fake, tmp_path):
    plan = [fake.stage("a"), fake.stage("b", reads=["z"])]
    with pytest.raises(ValueError, match="reads \\['z'\\]"):
        execute(plan, RunRecord(tmp_path))
