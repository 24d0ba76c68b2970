"""Encoder: the AnyPPG PPG encoder, an ECG encoder, ECG-guided CLIP pretraining and fine-tuning.

``encoder.config`` (every setting) imports without torch, so the command line can list the
training flags where torch is not installed; the weight functions load torch when first used.
"""

__all__ = ["load_anyppg", "load_ecgfounder", "save_anyppg"]


def __getattr__(name):
    if name in __all__:
        from . import checkpoints
        return getattr(checkpoints, name)
    raise AttributeError(f"module 'encoder' has no attribute {name!r}")
