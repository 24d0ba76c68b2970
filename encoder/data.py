"""torch datasets over the segment store that read whole batches from memory-mapped arrays.

Both datasets implement ``__getitems__``, so a ``DataLoader`` with ``batch_size`` set fetches a
batch with one sorted fancy-index read of the ``.npy`` memmap (no per-window file access, no
copy of the arrays into each worker), then converts float16 to float32 once.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch
from torch.utils.data import Dataset

from cohorts.store import SegmentStore


def read_rows(array, rows: np.ndarray) -> np.ndarray:
    """float32 copy of ``array[rows]``, read in sorted row order (sequential on a memmap)."""
    order = np.argsort(rows)
    out = np.empty((len(rows), array.shape[1]), dtype=np.float32)
    out[order] = array[rows[order]]
    return out


class StayWindows(Dataset):
    """Fine-tuning and inference: one item per stay.

    Yields ``(stay_id, ppg [W, 1, 1250], labels [P], mask [P], distinct [W])``. A stay with fewer
    than ``W`` windows repeats its windows cyclically to fill the batch tensor (``self.count``
    says how many are distinct); ``distinct`` marks the first occurrence of each window, so that
    the model averages over distinct windows (a stay with 3 windows weighs each 1/3, not
    7/20, 7/20, 6/20). Stays without a window are left out (``self.dropped``).

    Parameters
    ----------
    store : SegmentStore
    labels : polars.DataFrame
        ``labels.parquet``: ``stay_id`` plus Int8 phecode columns (null = excluded).
    phecodes : list of str
        The label columns, in output order.
    splits : tuple of str
    windows : int
        ``W``, windows per stay.
    """

    def __init__(self, store: SegmentStore, labels: pl.DataFrame | None, phecodes, splits, windows: int = 20):
        st = store.stays.filter(pl.col("split").is_in(list(splits)))
        self.dropped = int((st["n_ppg_windows"] == 0).sum())
        st = st.filter(pl.col("n_ppg_windows") > 0).sort("stay_id")
        self.stay_ids = st["stay_id"].to_list()
        self.store, self.windows = store, windows
        self.phecodes = list(phecodes)
        ranges = [store.ppg_rows(s) for s in self.stay_ids]
        self.first = np.array([a for a, _ in ranges], dtype=np.int64)
        self.count = np.array([b - a for a, b in ranges], dtype=np.int64)
        if labels is not None and self.phecodes:
            lab = pl.DataFrame({"stay_id": self.stay_ids}).join(labels.select("stay_id", *self.phecodes),
                                                                on="stay_id", how="left")
            m = lab.select(self.phecodes).to_numpy().astype(np.float32)  # nulls become NaN
            self.mask = ~np.isnan(m)
            self.y = np.nan_to_num(m, nan=0.0)
        else:
            self.y = np.zeros((len(self.stay_ids), 0), np.float32)
            self.mask = np.zeros((len(self.stay_ids), 0), bool)

    def __len__(self):
        return len(self.stay_ids)

    def _rows(self, idx):
        k = np.arange(self.windows)
        return (self.first[idx, None] + k[None, :] % self.count[idx, None]).reshape(-1)

    def __getitems__(self, idx):
        idx = np.asarray(idx)
        x = read_rows(self.store.ppg_array, self._rows(idx)).reshape(len(idx), self.windows, 1, -1)
        distinct = np.arange(self.windows)[None, :] < self.count[idx, None]
        return ([self.stay_ids[i] for i in idx], torch.from_numpy(x), torch.from_numpy(self.y[idx]),
                torch.from_numpy(self.mask[idx]), torch.from_numpy(distinct))

    def __getitem__(self, i):
        s, x, y, m, d = self.__getitems__([i])
        return s[0], x[0], y[0], m[0], d[0]


class PairWindows(Dataset):
    """Pretraining: one item per PPG-ECG pair, ``(ppg [1, 1250], ecg [1, 5000])``."""

    def __init__(self, store: SegmentStore, splits):
        idx = store.pair_index.filter(pl.col("split").is_in(list(splits)))
        self.rows = idx["row"].to_numpy().astype(np.int64)
        # a cohort's pairs belong to stays, a pair store's (extract-pairs) to subjects
        self.stay_ids = idx["stay_id" if "stay_id" in idx.columns else "subject"].to_list()
        self.store = store

    def __len__(self):
        return len(self.rows)

    def __getitems__(self, idx):
        rows = self.rows[np.asarray(idx)]
        p = read_rows(self.store.pairs_ppg_array, rows)[:, None, :]
        e = read_rows(self.store.pairs_ecg_array, rows)[:, None, :]
        return torch.from_numpy(p), torch.from_numpy(e)

    def __getitem__(self, i):
        p, e = self.__getitems__([i])
        return p[0], e[0]


class PairUnion(Dataset):
    """Several pair datasets as one (a cohort's pairs and pair stores of other sources): item
    ``i`` of the union is item ``i - offset`` of the dataset it falls in. ``names`` name each
    dataset's source; :meth:`source_indices` gives each source's items (the release's chunks are
    cut within a source)."""

    def __init__(self, datasets: list, names: list[str]):
        self.datasets, self.names = list(datasets), list(names)
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])

    def __len__(self):
        return int(self.offsets[-1])

    def source_indices(self) -> list[np.ndarray]:
        return [np.arange(a, b) for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    def __getitems__(self, idx):
        idx = np.asarray(idx)
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        parts, order = [], []
        for k in np.unique(which):
            sel = np.flatnonzero(which == k)
            parts.append(self.datasets[k].__getitems__(idx[sel] - self.offsets[k]))
            order.append(sel)
        inverse = np.argsort(np.concatenate(order), kind="stable")
        return tuple(torch.cat([p[j] for p in parts])[inverse] for j in range(len(parts[0])))

    def __getitem__(self, i):
        return tuple(x[0] for x in self.__getitems__([i]))


def identity_collate(batch):
    """``__getitems__`` already returns a collated batch."""
    return batch


def loader(dataset, batch_size: int, *, shuffle: bool, seed: int = 0, workers: int = 0,
           pin_memory: bool = False, drop_last: bool = False, sampler=None):
    """A ``DataLoader`` that fetches whole batches through ``__getitems__``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
        generator=gen, num_workers=workers, pin_memory=pin_memory, drop_last=drop_last,
        collate_fn=identity_collate, persistent_workers=workers > 0)
