"""Every setting of the encoder's commands as plain dataclasses, with presets; no torch needed.

``Net1DConfig`` (an encoder's architecture), ``TrainConfig`` (what pretraining and fine-tuning
share), ``PretrainConfig``, ``FinetuneConfig`` and ``PredictConfig``. Fields with help text are
command-line flags of the same name (:mod:`phewas.base.settings`) and every field a key of
``run-all``'s tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from cohorts.splits import SPLITS
from phewas.base.errors import SettingError
from phewas.base.settings import check_settings, setting, setting_name

DEVICES = ("auto", "cuda", "cpu")
# may change on --resume, and are no reason for run-all to rerun: the weights do not depend on them
SPEED_ONLY = ("workers", "compile", "device")
AGGREGATIONS = ("mean_logits", "mean_embedding", "attention")


@dataclass
class TrainConfig:
    """Settings that pretraining and fine-tuning share; each is a command-line flag."""

    preset: str = "study"
    batch_size: int = setting(256, "global batch, across processes")
    lr: float = setting(3e-4, "peak learning rate")
    weight_decay: float = setting(0.05, "AdamW weight decay (weights only)")
    warmup_steps: int = setting(1000, "linear warm-up steps before the cosine decay")
    grad_clip: float = 1.0
    grad_accum: int = setting(1, "micro-batches per step (gradient accumulation)")
    bf16: bool = setting(True, "fp32 on GPU (bf16 autocast is the default there)", flag="--no-bf16")
    compile: bool = setting(False, "torch.compile the model")
    workers: int = setting(4, "data-loader worker processes")
    seed: int = setting(0, "seed of the weights and the batch order")
    device: str = setting("auto", "where to train", choices=DEVICES)

    def __post_init__(self):
        check_settings(
            self,
            (self.batch_size >= 1, "batch_size", "at least 1"),
            (self.lr > 0, "lr", "more than 0"),
            (self.weight_decay >= 0, "weight_decay", "0 or more"),
            (self.warmup_steps >= 0, "warmup_steps", "0 or more"),
            (self.grad_clip > 0, "grad_clip", "more than 0"),
            (self.grad_accum >= 1, "grad_accum", "at least 1"),
            (self.batch_size % self.grad_accum == 0, "batch_size",
             f"a multiple of {setting_name(type(self), 'grad_accum')} ({self.grad_accum})"),
            (self.workers >= 0, "workers", "0 or more"),
            (self.device in DEVICES, "device", f"one of {DEVICES}"),
        )


def from_preset(cls, presets: dict, preset: str, overrides: dict):
    """``cls`` filled from ``presets[preset]``, then from ``overrides`` (``None`` values ignored)."""
    if preset not in presets:
        raise SettingError(f"--preset: unknown preset {preset!r}; choose from {sorted(presets)}")
    unknown = set(overrides) - {f.name for f in fields(cls)}
    if unknown:
        raise SettingError(f"unknown settings {sorted(unknown)}; known: {sorted(f.name for f in fields(cls))}")
    return cls(preset=preset, **{**presets[preset], **{k: v for k, v in overrides.items() if v is not None}})


@dataclass
class Net1DConfig:
    in_channels: int = 1
    base_filters: int = 64
    ratio: float = 1.0
    filter_list: list = field(default_factory=lambda: [64, 160, 160, 400, 400, 512])
    m_blocks_list: list = field(default_factory=lambda: [2, 2, 2, 3, 3, 1])
    kernel_size: int = 3
    stride: int = 2
    groups_width: int = 16
    dropout: float = 0.5  # inside each block; 0 turns it off (ECGFounder)

    @property
    def out_dim(self) -> int:
        return self.filter_list[-1]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Net1DConfig:
        """From a run's ``config.json``; keys of earlier versions that no longer matter are dropped."""
        return cls(**{k: v for k, v in d.items() if k not in RETIRED})


RETIRED = ("input_length",)  # never read: the network takes any length


def anyppg_config() -> Net1DConfig:
    """The AnyPPG PPG encoder: 10 s at 125 Hz -> 512-d (4,044,272 parameters)."""
    return Net1DConfig()


def ecgfounder_config() -> Net1DConfig:
    """The ECGFounder-shaped ECG encoder: 10 s at 500 Hz -> 1,024-d."""
    return Net1DConfig(filter_list=[64, 160, 160, 400, 400, 1024, 1024], m_blocks_list=[2, 2, 2, 3, 3, 4, 4],
                       kernel_size=16, dropout=0.0)


def demo_ppg() -> Net1DConfig:
    """A narrow member of the same family for CPU runs (~0.1 M parameters)."""
    return Net1DConfig(base_filters=16, filter_list=[16, 32, 32, 64, 64, 96], m_blocks_list=[1, 1, 1, 1, 1, 1],
                       dropout=0.1)


def demo_ecg() -> Net1DConfig:
    return Net1DConfig(base_filters=16, filter_list=[16, 32, 32, 64, 64, 96], m_blocks_list=[1, 1, 1, 1, 1, 1],
                       kernel_size=16, dropout=0.0)


@dataclass
class PretrainConfig(TrainConfig):
    """Settings of ``pretrain``: fields with help text are flags of the same name, every field a
    key of ``run-all``'s ``[pretrain]`` table; presets fill them, flags override."""

    ppg: Net1DConfig = field(default_factory=anyppg_config)  # --ppg-config: a JSON file of them
    ecg: Net1DConfig = field(default_factory=ecgfounder_config)  # --ecg-config
    objective: str = setting("clip", "clip: the PPG encoder against the paired ECG's (AnyPPG); simclr, byol: "
                             "PPG alone, two augmented views (the paper's baselines)",
                             choices=("clip", "simclr", "byol"))
    init: str | None = setting(None, "start the PPG encoder from these weights (AnyPPG, PaPaGei, Pulse-PPG, a "
                               "pretraining run)")
    ema_decay: float = 0.99  # BYOL's target network: decay of its moving average
    ecg_checkpoint: str | None = setting(None, "ECGFounder checkpoint: the ECG encoder is then frozen")
    cache_ecg: bool | None = setting(None, "precompute frozen ECG features once (default when the ECG "
                                     "encoder is frozen)", flag=("--cache-ecg", "--no-cache-ecg"))
    embed_dim: int = 128
    temperature: float = 0.07
    steps: int = setting(20000, "optimiser steps")
    eval_every: int = setting(500, "steps between validation losses")
    checkpoint_every: int = setting(500, "steps between checkpoints")
    retrieval_batch: int = setting(64, "batch size of the retrieval metrics")

    def __post_init__(self):
        super().__post_init__()
        check_settings(
            self,
            (self.steps >= 1, "steps", "at least 1"),
            (self.eval_every >= 1, "eval_every", "at least 1"),
            (self.checkpoint_every >= 1, "checkpoint_every", "at least 1"),
            (self.retrieval_batch >= 2, "retrieval_batch", "at least 2"),
            (self.temperature > 0, "temperature", "more than 0"),
            (self.embed_dim >= 1, "embed_dim", "at least 1"),
            (self.objective in ("clip", "simclr", "byol"), "objective", "clip, simclr or byol"),
            (0 < self.ema_decay < 1, "ema_decay", "between 0 and 1"),
        )

    @property
    def ecg_frozen(self) -> bool:
        return self.ecg_checkpoint is not None

    @property
    def use_cache(self) -> bool:
        return self.ecg_frozen if self.cache_ecg is None else self.cache_ecg


PRETRAIN_PRESETS = {
    # Full-size encoders as released (AnyPPG PPG tower, ECGFounder-shaped ECG tower). Optimiser
    # values are this toolkit's defaults for GPU runs.
    "study": {},
    # CPU-sized: the same family, narrow; a few hundred steps.
    "demo": {"ppg": demo_ppg(), "ecg": demo_ecg(), "batch_size": 64, "steps": 300, "lr": 5e-3,
             "warmup_steps": 30, "eval_every": 50, "checkpoint_every": 50, "retrieval_batch": 32,
             "workers": 0, "weight_decay": 0.01},
}


def pretrain_config(preset: str = "study", **overrides) -> PretrainConfig:
    """A preset with overrides (``None`` values are ignored)."""
    return from_preset(PretrainConfig, PRETRAIN_PRESETS, preset, overrides)


@dataclass
class FinetuneConfig(TrainConfig):
    """Settings of ``finetune``: fields with help text are flags of the same name, every field a
    key of ``run-all``'s ``[finetune]`` table; presets fill them, flags override."""

    ppg: Net1DConfig = field(default_factory=anyppg_config)  # --ppg-config: a JSON file of them
    init: str | None = setting(None, "pretrain run folder, pretrain checkpoint, or released weights (AnyPPG "
                               ".pth, PaPaGei .pt, Pulse-PPG .pkl)")
    segments_per_stay: int = setting(20, "PPG windows per stay")
    min_train_positives: int = setting(20, "targets: phecodes with at least K positive training stays")
    aggregation: str = setting("mean_logits", "how a stay's windows combine", choices=AGGREGATIONS)
    pos_weight: bool = setting(False, "weight positives by negatives/positives (capped) for rare phecodes")
    pos_weight_max: float = 50.0
    head_dropout: float = 0.2
    batch_size: int = setting(32, "global batch (stays)")
    epochs: int = setting(10, "passes over the training stays")
    lr: float = setting(1e-3, "learning rate of the head")
    encoder_lr: float = setting(1e-4, "learning rate of the encoder (--lr is the head's)")
    weight_decay: float = setting(0.01, "AdamW weight decay (weights only)")
    warmup_steps: int = setting(500, "linear warm-up steps before the cosine decay")
    evals_per_epoch: int = 1
    patience: int = setting(3, "evaluations without a better validation macro AUC before stopping")

    def __post_init__(self):
        super().__post_init__()
        check_settings(
            self,
            (self.aggregation in AGGREGATIONS, "aggregation", f"one of {AGGREGATIONS}"),
            (self.segments_per_stay >= 1, "segments_per_stay", "at least 1"),
            (self.min_train_positives >= 1, "min_train_positives", "at least 1"),
            (self.epochs >= 1, "epochs", "at least 1"),
            (self.encoder_lr > 0, "encoder_lr", "more than 0"),
            (self.patience >= 1, "patience", "at least 1"),
            (self.evals_per_epoch >= 1, "evals_per_epoch", "at least 1"),
            (0 <= self.head_dropout < 1, "head_dropout", "between 0 and 1"),
            (self.pos_weight_max >= 1, "pos_weight_max", "at least 1"),
        )


FINETUNE_PRESETS = {
    "study": {},
    "demo": {"ppg": demo_ppg(), "segments_per_stay": 10, "min_train_positives": 10, "batch_size": 16,
             "epochs": 8, "lr": 3e-3, "encoder_lr": 1e-3, "warmup_steps": 20, "workers": 0,
             "evals_per_epoch": 1, "patience": 4},
}


def finetune_config(preset: str = "study", **overrides) -> FinetuneConfig:
    """A preset with overrides (``None`` values are ignored)."""
    return from_preset(FinetuneConfig, FINETUNE_PRESETS, preset, overrides)


@dataclass
class PredictConfig:
    """Settings of ``predict``: each field is a flag of the same name; ``split`` is also the key of
    ``run-all``'s ``[predict]`` table."""

    split: str = setting("heldout", "the cohort split to predict", choices=SPLITS)
    device: str = setting("auto", "where to run", choices=DEVICES)
    batch_size: int = setting(32, "stays per forward pass")
    allow_unfinished: bool = setting(False, "predict from a run stopped before its end (recorded in the "
                                     "predictions' manifest)")

    def __post_init__(self):
        check_settings(self, (self.split in SPLITS, "split", f"one of {SPLITS}"),
                       (self.batch_size >= 1, "batch_size", "at least 1"))
