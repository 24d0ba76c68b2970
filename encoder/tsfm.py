"""General time-series foundation models as frozen encoders (``probe --encoder moment:DIR``,
``chronos:DIR``), through their own packages, from weights in a local folder (nothing is
downloaded): ``pip install 'phewas[baselines]'`` (Chronos; MOMENT's ``momentfm`` pins old numpy and
transformers, so it is installed with ``pip install --no-deps momentfm``).

- MOMENT (Goswami et al., ICML 2024; ``AutonLab/MOMENT-1-{small,base,large}``): ``MOMENTPipeline``
  with ``task_name="embedding"``; its input is 512 samples, so each 10-s window is resampled to 512
  (51.2 Hz) by the Fourier method; the embedding is MOMENT's own (the mean over patches).
- Chronos (Ansari et al., 2024; ``amazon/chronos-t5-*``, ``amazon/chronos-bolt-*``,
  ``amazon/chronos-2``): ``BaseChronosPipeline.from_pretrained`` picks the family; each window is
  given at 125 Hz (Chronos-T5 reads its last 512 values), and the embedding is the mean of the
  encoder's tokens, as the AnyPPG paper took it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from phewas.base.errors import InputError, PhewasError

from .resnet1d import fourier_resample

MOMENT_LENGTH = 512


def _missing(package: str, extra: str) -> PhewasError:
    return PhewasError(f"this encoder needs the {package!r} package: {extra}")


class MomentEncoder(nn.Module):
    """MOMENT's embedding of a window resampled to its 512-sample input."""

    def __init__(self, pipeline, out_dim: int):
        super().__init__()
        self.pipeline, self.out_dim = pipeline, out_dim

    def forward(self, x):
        x = fourier_resample(x.float(), MOMENT_LENGTH)
        return self.pipeline(x_enc=x).embeddings


class ChronosEncoder(nn.Module):
    """A Chronos pipeline's encoder tokens of a window, averaged."""

    def __init__(self, pipeline, out_dim: int):
        super().__init__()
        self.pipeline, self.out_dim = pipeline, out_dim
        self.inner = getattr(pipeline, "model", None)  # registered, so that .to() and .eval() reach it

    def forward(self, x):
        x = x.float().cpu()
        if type(self.pipeline).__name__ == "Chronos2Pipeline":
            tokens, _ = self.pipeline.embed(x)  # a list of [1, patches + 2, d]
            return torch.stack([t.float().mean(dim=(0, 1)) for t in tokens])
        tokens, _ = self.pipeline.embed(x[:, 0, :])  # [B, tokens, d]
        return tokens.float().mean(dim=1)


def load_tsfm(spec: str):
    """``moment:DIR`` or ``chronos:DIR`` as an encoder in eval mode, and its description."""
    kind, _, folder = spec.partition(":")
    path = Path(folder)
    if not path.is_dir():
        raise InputError(path, f"{kind}: give the folder of a downloaded model (config.json and weights)")
    with torch.no_grad():
        if kind == "moment":
            try:
                from momentfm import MOMENTPipeline
            except ImportError:
                raise _missing("momentfm", "pip install --no-deps momentfm (its pins are too old)") from None
            pipe = MOMENTPipeline.from_pretrained(str(path), model_kwargs={"task_name": "embedding"})
            pipe.init()
            model = MomentEncoder(pipe.eval(), 0)
            model.out_dim = int(model(torch.zeros(1, 1, 1250)).shape[-1])
            fed = "the 10-s window resampled to 512 samples"
        elif kind == "chronos":
            try:
                from chronos import BaseChronosPipeline
            except ImportError:
                raise _missing("chronos-forecasting", "pip install 'phewas[baselines]'") from None
            pipe = BaseChronosPipeline.from_pretrained(str(path), device_map="cpu")
            model = ChronosEncoder(pipe, 0)
            model.out_dim = int(model(torch.zeros(1, 1, 1250)).shape[-1])
            fed = "the 10-s 125-Hz window (1,250 samples)"
        else:
            raise PhewasError(f"unknown encoder kind {kind!r}: moment:DIR or chronos:DIR")
    from phewas.base.io import file_sha256
    weights = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pth", ".pt"))
    digest = file_sha256(weights[0])[:16] if weights else kind
    return model.eval(), {"kind": kind, "path": str(path.resolve()), "sha256": None, "key": f"{kind}-{digest}",
                          "input": fed}
