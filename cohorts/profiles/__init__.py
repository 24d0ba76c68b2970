"""Preprocessing profiles: how raw PPG (and ECG) become the encoder's 10-s windows.

* ``anyppg`` (the default): the AnyPPG release's processor, window by window
  (:mod:`cohorts.profiles.anyppg`). What the released checkpoint was trained on; use it to feed
  that checkpoint, to reproduce the paper, or to train a model that others will feed with the
  release's code.
* ``robust``: this toolkit's own processing (:mod:`cohorts.preprocess`): per-record filtering,
  gaps bridged by interpolation, flat stretches judged relative to the record, PPG polarity
  corrected by a vote. It keeps more of a noisy monitor record and does not depend on the
  record's units; use it for models trained and evaluated within this toolkit.

``docs/methods.md`` compares them step by step, with their measured effect on real recordings.
"""

PROFILES = ("anyppg", "robust")
DEFAULT_PROFILE = "anyppg"
