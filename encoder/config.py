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
SPEED_ONLY = ("workers", "compile", "device", "log_every", "dist_timeout")
AGGREGATIONS = ("mean_logits", "mean_embedding", "attention")
OBJECTIVE_NAMES = ("clip", "simclr", "byol")  # encoder.objectives.OBJECTIVES holds each one's code


@dataclass
class TrainConfig:
    """Settings that pretraining and fine-tuning share; each is a command-line flag."""

    preset: str = setting("study", "study: the released encoders' size; demo: a narrow one for CPU runs",
                          choices=("study", "demo"))
    batch_size: int | None = setting(256, "global batch, across processes")
    device_batch = None  # a batch per process instead (pretraining's --device-batch)
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
    deterministic: bool = setting(False, "deterministic GPU kernels and no cuDNN autotuning: a resumed run repeats "
                                  "the uninterrupted one exactly (slower)")
    log_every: int = setting(10, "steps between logged metrics (the only steps at which the host waits for the "
                             "GPU)")
    dist_timeout: float = setting(60.0, "minutes a process waits for the others at a collective (torchrun)")

    def __post_init__(self):
        check_settings(
            self,
            (self.batch_size is None or self.batch_size >= 1, "batch_size", "at least 1"),
            (self.lr > 0, "lr", "more than 0"),
            (self.weight_decay >= 0, "weight_decay", "0 or more"),
            (self.warmup_steps >= 0, "warmup_steps", "0 or more"),
            (self.grad_clip > 0, "grad_clip", "more than 0"),
            (self.grad_accum >= 1, "grad_accum", "at least 1"),
            ((self.batch_size or self.device_batch or 0) % self.grad_accum == 0, "batch_size",
             f"a multiple of {setting_name(type(self), 'grad_accum')} ({self.grad_accum})"),
            (self.workers >= 0, "workers", "0 or more"),
            (self.log_every >= 1, "log_every", "at least 1"),
            (self.dist_timeout > 0, "dist_timeout", "more than 0"),
            (self.device in DEVICES, "device", f"one of {DEVICES}"),
        )


def from_preset(cls, presets: dict, preset: str, overrides: dict, layers: tuple[dict, ...] = ()):
    """``cls`` filled from ``layers`` (a recipe, say), then ``presets[preset]``, then ``overrides``
    (``None`` values ignored). Settings that say the same thing two ways (:data:`EITHER`): the
    later layer's choice clears the other one's earlier value."""
    if preset not in presets:
        raise SettingError(f"--preset: unknown preset {preset!r}; choose from {sorted(presets)}")
    known = {f.name for f in fields(cls)}
    unknown = set(overrides) - known
    if unknown:
        raise SettingError(f"unknown settings {sorted(unknown)}; known: {sorted(known)}")
    values: dict = {}
    for layer in (*layers, presets[preset], {k: v for k, v in overrides.items() if v is not None}):
        for a, b in EITHER:
            if a in known and b in known and (a in layer) != (b in layer):
                values.pop(b if a in layer else a, None)
                values[a if b in layer else b] = None
        values.update(layer)
    return cls(preset=preset, **values)


# one of each pair sets a run's length or batch; whichever a later layer names wins
EITHER = (("steps", "epochs"), ("batch_size", "device_batch"))


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


@dataclass
class ResNet1DConfig:
    """The network's shape. ``final_bn`` (BN and ReLU after the last block), ``pool`` ("mean" or
    "max" over time), ``dense`` (a linear layer ``out -> out`` after pooling) and ``input_norm`` (an
    instance norm of the input) are the two released models' differences."""

    family: str = "papagei"  # or "pulse-ppg": the released model it follows
    in_channels: int = 1
    base_filters: int = 32
    kernel_size: int = 3
    n_block: int = 18
    downsample_gap: int = 2
    increasefilter_gap: int = 4
    dropout: float = 0.5
    final_bn: bool = True
    pool: str = "mean"
    dense: bool = True
    dense_out: int | None = None  # the dense layer's width; None: as its input (PaPaGei's 512 -> 512)
    input_norm: bool = False
    resampling: str = "poly"  # Pulse-PPG's input: its 50 Hz by resample_poly ("poly") or the Fourier method

    @property
    def channels(self) -> int:
        """The last block's channels."""
        return self.base_filters * 2 ** ((self.n_block - 1) // self.increasefilter_gap)

    @property
    def out_dim(self) -> int:
        return (self.dense_out or self.channels) if self.dense else self.channels

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ResNet1DConfig:
        """From a run's ``config.json``; a run recorded before ``resampling`` existed was fed by the
        Fourier method."""
        return cls(**({"resampling": "fourier"} | d))


def papagei_config() -> ResNet1DConfig:
    """PaPaGei-S and PaPaGei-P: 10 s at 125 Hz -> 512-d."""
    return ResNet1DConfig()


def pulseppg_config() -> ResNet1DConfig:
    """Pulse-PPG: any length at 50 Hz -> 512-d."""
    return ResNet1DConfig(family="pulse-ppg", base_filters=128, kernel_size=11, n_block=12, final_bn=False,
                          pool="max", dense=False, input_norm=True)


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


RECIPES = {
    # The AnyPPG release's pretraining/{anyppg,simclr,byol}/run_experiment.sh with its main.py and
    # trainer.py: 4 chunks of 512 pairs per process, the loss per process, AdamW(4e-4, betas 0.9 /
    # 0.999, weight decay 0.01 on every parameter), 5,000 warm-up ticks of a cosine schedule that
    # accelerate advances once per process per step, 5 epochs, heads without dropout, an unclamped
    # temperature, seed 42, the last weights kept.
    "anyppg": {"lr": 4e-4, "betas": (0.9, 0.999), "weight_decay": 0.01, "decay_all": True, "warmup_steps": 5000,
               "schedule_ticks": "world", "epochs": 5, "device_batch": 2048, "chunk_size": 512,
               "loss_scope": "device", "head_dropout": 0.0, "clamp_temperature": False, "grad_clip": 1.0,
               "seed": 42, "keep": "last", "sync_bn": False},
    # This toolkit's: the loss over every process's batch (open_clip's), decay on weight matrices
    # only, a clamped temperature, dropout before the heads, the best validation loss kept.
    "phewas": {"lr": 3e-4, "betas": (0.9, 0.98), "weight_decay": 0.05, "decay_all": False, "warmup_steps": 1000,
               "schedule_ticks": "step", "steps": 20000, "batch_size": 256, "chunk_size": 0,
               "loss_scope": "global", "head_dropout": 0.2, "clamp_temperature": True, "grad_clip": 1.0,
               "seed": 0, "keep": "best", "sync_bn": None},
}
LOSS_SCOPES = ("global", "device")
TICKS = ("step", "world")
KEEP = ("best", "last")


@dataclass
class PretrainConfig(TrainConfig):
    """Settings of ``pretrain``: fields with help text are flags of the same name, every field a
    key of ``run-all``'s ``[pretrain]`` table. A recipe (:data:`RECIPES`) fills them first, then
    the preset, then flags; ``config.json`` records every value."""

    ppg: Net1DConfig = field(default_factory=anyppg_config)  # --ppg-config: a JSON file of them
    ecg: Net1DConfig = field(default_factory=ecgfounder_config)  # --ecg-config
    objective: str = setting("clip", "clip: the PPG encoder against the paired ECG's (AnyPPG); simclr, byol: "
                             "PPG alone, two augmented views (the paper's baselines)",
                             choices=OBJECTIVE_NAMES)
    recipe: str = setting("anyppg", "anyppg: the AnyPPG release's training recipe (its run_experiment.sh); "
                          "phewas: this toolkit's (docs/methods.md compares them)", choices=tuple(RECIPES))
    init: str | None = setting(None, "start the PPG encoder from these weights (AnyPPG, PaPaGei, Pulse-PPG, a "
                               "pretraining run)")
    ema_decay: float = 0.99  # BYOL's target network: decay of its moving average
    ecg_checkpoint: str | None = setting(None, "ECGFounder checkpoint: the ECG encoder is then frozen")
    ecg_from_scratch: bool = setting(False, "train the ECG encoder from scratch when no --ecg-checkpoint is given "
                                     "(the anyppg recipe otherwise requires a frozen ECGFounder)")
    cache_ecg: bool | None = setting(None, "precompute frozen ECG features once (default when the ECG "
                                     "encoder is frozen)", flag=("--cache-ecg", "--no-cache-ecg"))
    embed_dim: int = 128
    temperature: float = 0.07
    steps: int | None = setting(None, "optimiser steps (the recipe gives a length; --epochs instead counts passes)")
    epochs: int | None = setting(None, "passes over the training pairs (the anyppg recipe's 5); sets the steps")
    device_batch: int | None = setting(None, "pairs per process and step (the anyppg recipe's 2,048: four chunks of "
                                       "512); instead of --batch-size")
    chunk_size: int = setting(0, "pairs per fixed chunk of one source, a batch drawing whole chunks (the anyppg "
                              "recipe's 512); 0: pairs shuffled freely")
    loss_scope: str = setting("global", "global: the contrastive loss over every process's batch; device: each "
                              "process's own (the release's)", choices=LOSS_SCOPES)
    betas: tuple = (0.9, 0.98)  # AdamW's
    decay_all: bool = False  # weight decay on every parameter (the release's) or weight matrices only
    schedule_ticks: str = "step"  # "world": the schedule advances once per process per step (accelerate's)
    head_dropout: float = 0.2  # dropout before the projection heads
    clamp_temperature: bool = True  # clamp the CLIP logit scale at 100 (open_clip's)
    keep: str = "best"  # the weights exported: the best validation loss's, or the last step's
    sync_bn: bool | None = setting(None, "batch norm over every process's batch (SyncBatchNorm) under torchrun; "
                                   "default: on for contrastive objectives with a global loss",
                                   flag=("--sync-bn", "--no-sync-bn"))
    eval_every: int = setting(500, "steps between validation losses")
    checkpoint_every: int = setting(500, "steps between checkpoints")
    retrieval_batch: int = setting(64, "batch size of the retrieval metrics")

    def __post_init__(self):
        self.betas = tuple(self.betas)
        super().__post_init__()
        check_settings(
            self,
            ((self.steps is None) != (self.epochs is None), "steps", "given, or --epochs instead (one of the two)"),
            ((self.batch_size is None) != (self.device_batch is None), "batch_size",
             "given, or --device-batch instead (one of the two)"),
            (self.steps is None or self.steps >= 1, "steps", "at least 1"),
            (self.epochs is None or self.epochs >= 1, "epochs", "at least 1"),
            (self.device_batch is None or self.device_batch >= 1, "device_batch", "at least 1"),
            (self.chunk_size >= 0, "chunk_size", "0 or more"),
            (not self.chunk_size or (self.device_batch or self.batch_size) % self.chunk_size == 0, "chunk_size",
             f"0 or a divisor of the batch ({self.device_batch or self.batch_size})"),
            (self.recipe in RECIPES, "recipe", f"one of {tuple(RECIPES)}"),
            (self.loss_scope in LOSS_SCOPES, "loss_scope", f"one of {LOSS_SCOPES}"),
            (self.schedule_ticks in TICKS, "schedule_ticks", f"one of {TICKS}"),
            (self.keep in KEEP, "keep", f"one of {KEEP}"),
            (0 <= self.head_dropout < 1, "head_dropout", "between 0 and 1"),
            (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", "two numbers in [0, 1)"),
            (self.eval_every >= 1, "eval_every", "at least 1"),
            (self.checkpoint_every >= 1, "checkpoint_every", "at least 1"),
            (self.retrieval_batch >= 2, "retrieval_batch", "at least 2"),
            (self.temperature > 0, "temperature", "more than 0"),
            (self.embed_dim >= 1, "embed_dim", "at least 1"),
            (self.objective in OBJECTIVE_NAMES, "objective", f"one of {', '.join(OBJECTIVE_NAMES)}"),
            (0 < self.ema_decay < 1, "ema_decay", "between 0 and 1"),
        )

    @property
    def ecg_frozen(self) -> bool:
        return self.ecg_checkpoint is not None

    @property
    def use_cache(self) -> bool:
        return self.ecg_frozen if self.cache_ecg is None else self.cache_ecg


PRETRAIN_PRESETS = {
    # Full-size encoders as released (AnyPPG PPG tower, ECGFounder-shaped ECG tower); the recipe's
    # values as they are.
    "study": {},
    # CPU-sized: the same family, narrow; a few hundred steps of 64 pairs in chunks of 16, a
    # larger learning rate; no ECGFounder weights exist offline, so the ECG tower trains too.
    "demo": {"ppg": demo_ppg(), "ecg": demo_ecg(), "batch_size": 64, "chunk_size": 0, "steps": 300, "lr": 5e-3,
             "warmup_steps": 30, "schedule_ticks": "step", "eval_every": 50, "checkpoint_every": 50,
             "retrieval_batch": 32, "workers": 0, "weight_decay": 0.01, "ecg_from_scratch": True, "keep": "best"},
}


def pretrain_config(preset: str = "study", **overrides) -> PretrainConfig:
    """A recipe (``overrides["recipe"]``, else the preset's, else ``anyppg``), then a preset, then
    overrides (``None`` values are ignored)."""
    recipe = overrides.get("recipe") or PRETRAIN_PRESETS.get(preset, {}).get("recipe") or "anyppg"
    if recipe not in RECIPES:
        raise SettingError(f"--recipe: unknown recipe {recipe!r}; choose from {sorted(RECIPES)}")
    return from_preset(PretrainConfig, PRETRAIN_PRESETS, preset, overrides, layers=(RECIPES[recipe],))


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
    """Settings of ``predict``: each field is a flag of the same name, and a key of ``run-all``'s
    ``[predict]`` table (whose ``split`` every report and comparison reads)."""

    split: str = setting("heldout", "the cohort split to predict", choices=SPLITS)
    device: str = setting("auto", "where to run", choices=DEVICES)
    batch_size: int = setting(32, "stays per forward pass")
    allow_unfinished: bool = setting(False, "predict from a run stopped before its end (recorded in the "
                                     "predictions' manifest)")

    def __post_init__(self):
        check_settings(self, (self.split in SPLITS, "split", f"one of {SPLITS}"),
                       (self.batch_size >= 1, "batch_size", "at least 1"))
