"""The paper's pretraining sources beside MC-MED, as pair stores (``phewas extract-pairs``).

One module per source reads its published layout (:mod:`.pulsedb`, :mod:`.mesa`, :mod:`.cfs`,
:mod:`.hsp`; the polysomnography sources share :mod:`.psg` and :mod:`.edf`); :mod:`.extract` turns a
source into a pair store, :mod:`.store` describes and reads one. A new source is its module plus
one line of :data:`.extract.SOURCES`.
"""

from .extract import FORMATS, PairsConfig, PairsSource, extract_pairs, merge_pairs, subject_splits
from .store import PairStore, open_pairs

__all__ = ["FORMATS", "PairStore", "PairsConfig", "PairsSource", "extract_pairs", "merge_pairs", "open_pairs",
           "subject_splits"]
