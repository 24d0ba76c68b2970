"""Encoder: the AnyPPG PPG encoder, an ECG encoder, ECG-guided CLIP pretraining and fine-tuning."""

from .checkpoints import load_anyppg, load_ecgfounder, save_anyppg

__all__ = ["load_anyppg", "load_ecgfounder", "save_anyppg"]
