"""encoder.embed: batched embeddings equal one forward pass, in any batch size and into a given
array; the cache is written whole (no temporary left) and read back without recomputing."""

import numpy as np
import torch

from encoder.embed import cached_embeddings, embed


class Counting(torch.nn.Module):
    """A fixed linear map of each window, counting its forward passes."""

    out_dim = 3

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(1250, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.proj(x[:, 0])


def test_batches_equal_one_forward_pass():
    windows = np.random.default_rng(0).standard_normal((37, 1250)).astype(np.float32)
    model = Counting()
    with torch.no_grad():
        whole = model(torch.from_numpy(windows)[:, None]).numpy()
    for batch in (1, 5, 37, 64):
        np.testing.assert_allclose(embed(model, windows, batch=batch, device="cpu"), whole, rtol=1e-5, atol=1e-6)
    out = np.full((37, 3), np.nan, np.float32)
    assert embed(model, windows, batch=8, device="cpu", out=out) is out
    np.testing.assert_allclose(out, whole, rtol=1e-5, atol=1e-6)


def test_the_cache_is_written_once_and_read_back(tmp_path):
    windows = np.random.default_rng(1).standard_normal((20, 1250)).astype(np.float32)
    model = Counting()
    first = np.array(cached_embeddings(model, "k", windows, tmp_path, batch=8, device="cpu"))
    calls = model.calls
    assert calls == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["embeddings-k.npy"]
    again = cached_embeddings(model, "k", windows, tmp_path, batch=8, device="cpu")
    assert model.calls == calls and np.array_equal(again, first)  # read, not recomputed
    # another number of windows under the same key: recomputed, not a wrong-shaped array
    assert cached_embeddings(model, "k", windows[:5], tmp_path, batch=8, device="cpu").shape == (5, 3)
