"""A simulated labelled PPG dataset in the probe format (``phewas simulate-probe``), with known
beat rate and effects: the ground truth for ``phewas probe``.

Subjects have a resting heart rate, an arterial stiffness and, for some, atrial fibrillation or
heart failure; each subject has several 30-s WFDB records (100 Hz, so probing resamples) whose
rate varies around the subject's. Labels per record: ``heart_rate`` (the mean rate of the
record's simulated beats, bpm), ``af`` and ``heart_failure`` (binary), ``stiffness``
(regression, the simulator's arbitrary units). **Simulated**: they test the probe, not any
encoder's worth on real PPG.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass

import numpy as np

from phewas.base.io import atomic_dir, write_manifest
from phewas.base.settings import check_settings, setting

from .signals import Physiology, add_artefacts, beat_train, ppg_signal

FS = 100.0
TASKS = {"heart_rate": "regression", "af": "binary", "heart_failure": "binary", "stiffness": "regression"}


@dataclass
class SimulateProbeConfig:
    """Settings of ``simulate-probe``: fields with help text are flags of the same name."""

    subjects: int = setting(60, "subjects to simulate")
    records_per_subject: int = setting(4, "records of each subject")
    seed: int = setting(0, "seed of the subjects and their records")
    seconds: float = 30.0  # length of a record

    def __post_init__(self):
        check_settings(self, (self.subjects >= 1, "subjects", "at least 1"),
                       (self.records_per_subject >= 1, "records_per_subject", "at least 1"),
                       (self.seconds > 0, "seconds", "more than 0"))


def simulate_probe_dataset(out, config: SimulateProbeConfig | None = None, *, overwrite: bool = False) -> dict:
    """``phewas simulate-probe``: write the dataset folder; returns its manifest."""
    import wfdb
    cfg = config or SimulateProbeConfig()
    seconds = cfg.seconds
    rng = np.random.default_rng(cfg.seed)
    rows = []
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "records").mkdir()
        for s in range(cfg.subjects):
            base_hr = float(rng.uniform(55, 100))
            stiffness = float(rng.normal(0.0, 1.0))
            af = bool(rng.random() < 0.3)
            hf = bool(rng.random() < 0.25)
            for r in range(cfg.records_per_subject):
                phys = Physiology(hr=float(np.clip(base_hr + rng.normal(0, 8) + 10 * hf, 45, 140)),
                                  af=float(af), hf=0.8 * hf, stiffness=stiffness,
                                  resp_hz=float(rng.uniform(0.15, 0.35)))
                beats, rr = beat_train(seconds, phys, rng)
                x = add_artefacts(ppg_signal(beats, rr, seconds, phys, rng, fs=FS), FS, rng, nan_prob=0.0)
                inside = (beats >= 0) & (beats < seconds)
                hr = 60.0 / float(np.mean(rr[inside]))
                name = f"s{s:03d}_{r}"
                sig = np.nan_to_num(np.clip(x, -16, 16))[:, None]
                wfdb.wrsamp(name, fs=FS, units=["NU"], sig_name=["PPG"], p_signal=sig, fmt=["16"],
                            adc_gain=[2000.0], baseline=[0], write_dir=str(tmp / "records"))
                rows.append([f"records/{name}", f"s{s:03d}", f"{hr:.2f}", int(af), int(hf), f"{stiffness:.3f}"])
        with open(tmp / "labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["record", "subject", *TASKS])
            w.writerows(rows)
        (tmp / "dataset.toml").write_text(
            'name = "simulated"\nchannel = "PPG"\n'
            + "".join(f'[tasks.{t}]\nkind = "{k}"\n' for t, k in TASKS.items()))
        manifest = write_manifest(tmp, command="simulate-probe", inputs={},
                                  parameters={**asdict(cfg), "fs": FS},
                                  counts={"records": len(rows)}, simulated=True)
    return manifest
