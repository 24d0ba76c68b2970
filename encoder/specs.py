"""How users name an encoder, parsed in one place (no torch needed).

=========================  ====================================================================
spec                       encoder
=========================  ====================================================================
``features``               the pulse features (:mod:`encoder.pulse`), a hand-crafted row
``random``                 AnyPPG's architecture (or the first trained encoder's), seeded weights
``random:FAMILY``          a family's released architecture, seeded weights
``moment:DIR``             MOMENT from a local folder (:mod:`encoder.tsfm`)
``chronos:DIR``            Chronos from a local folder
``FAMILY:FILE``            released weights that must form that family's released network
``FILE``                   released weights, their family recognised by their layout
``DIR``                    a pretraining run (``ppg_encoder.pth``) or a fine-tuning run
=========================  ====================================================================

``FAMILY`` is a name of :data:`encoder.families.FAMILIES` (``anyppg``, ``papagei-s``,
``papagei-p``, ``pulse-ppg``, and ``pulse-ppg-fourier`` for Pulse-PPG fed by the Fourier method,
as the AnyPPG paper's comparison fed it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .families import FAMILIES

RANDOM, FEATURES = "random", "features"
TSFM = ("moment", "chronos")  # general time-series foundation models
FAMILY_NAMES = tuple(FAMILIES)
ALIASES = {"papagei": "papagei-p"}  # random:papagei, as earlier versions named PaPaGei's architecture
KINDS = ("features", "random", "tsfm", "family", "file", "run")


@dataclass(frozen=True)
class EncoderSpec:
    """A parsed encoder spec: ``kind`` (one of :data:`KINDS`), ``family`` (a name of
    :data:`FAMILY_NAMES` where the spec names one), ``path`` (a file or folder) and ``text`` (the
    spec as given)."""

    kind: str
    text: str
    family: str | None = None
    path: str | None = None

    @property
    def name(self) -> str:
        """The encoder's default name in tables: ``random``, ``features``, ``random-papagei-s``,
        ``chronos-DIRNAME``, a file's stem or a folder's name."""
        if self.kind in ("features", "random") and self.family is None:
            return self.kind
        if self.kind == "random":
            return f"random-{self.family}"
        if self.kind == "tsfm":
            return f"{self.family}-{Path(self.path).name or self.path}"
        p = Path(self.path)
        return p.stem if p.is_file() or p.suffix else p.resolve().name


def parse_spec(spec: str) -> EncoderSpec:
    """The :class:`EncoderSpec` of ``spec`` (see the module's table). A ``random:`` or
    ``FAMILY:`` prefix naming no family is a ``ValueError`` listing them."""
    spec = str(spec)
    if spec in (FEATURES, RANDOM):
        return EncoderSpec(spec, spec)
    head, sep, rest = spec.partition(":")
    if sep and head == RANDOM:
        rest = ALIASES.get(rest, rest)
        if rest not in FAMILY_NAMES:
            raise ValueError(f"encoder {spec!r}: unknown family {rest!r}; one of {', '.join(FAMILY_NAMES)}")
        return EncoderSpec("random", spec, family=rest)
    if sep and head in TSFM:
        return EncoderSpec("tsfm", spec, family=head, path=rest)
    if sep and head in FAMILY_NAMES:
        return EncoderSpec("family", spec, family=head, path=rest)
    if sep and len(head) > 1 and not Path(spec).exists() and "/" not in head and "\\" not in head:
        raise ValueError(f"encoder {spec!r}: unknown prefix {head!r}; name a family ({', '.join(FAMILY_NAMES)}), "
                         f"{' or '.join(TSFM)}, or give a file or run folder")
    return EncoderSpec("run" if Path(spec).is_dir() else "file", spec, path=spec)
