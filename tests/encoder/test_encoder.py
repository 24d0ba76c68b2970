import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference_net1d import ReferenceNet1D

from encoder.checkpoints import load_anyppg, load_ecgfounder, save_anyppg
from encoder.clip import PPGECGClip, clip_loss, retrieval_metrics
from encoder.config import Net1DConfig, anyppg_config, ecgfounder_config
from encoder.net1d import Net1D
from encoder.optim import param_groups
from encoder.sampler import ResumableBatches
from phewas.base.errors import InputError


def test_anyppg_shapes_parameters_and_keys():
    m = Net1D(anyppg_config())
    assert sum(p.numel() for p in m.parameters()) == 4_044_272
    sd = m.state_dict()
    assert len(sd) == 332
    for k in ("first_conv.conv.weight", "stage_list.0.block_list.0.bn1.weight",
              "stage_list.5.block_list.0.se_fc2.bias"):
        assert k in sd
    assert m(torch.randn(3, 1, 1250)).shape == (3, 512)


def test_ecg_encoder_shape():
    m = Net1D(ecgfounder_config())
    assert m.out_dim == 1024
    m.eval()
    with torch.no_grad():
        assert m(torch.randn(1, 1, 5000)).shape == (1, 1024)
    assert not any(isinstance(x, torch.nn.Dropout) for x in m.modules())


def test_matches_the_reference_network_both_ways():
    torch.manual_seed(0)
    ref = ReferenceNet1D()
    for mod in ref.modules():  # non-trivial batch-norm statistics
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    ours = Net1D(anyppg_config())
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.eval(), ours.eval()
    x = torch.randn(4, 1, 1250)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    ref2 = ReferenceNet1D()
    ref2.load_state_dict(ours.state_dict(), strict=True)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_anyppg_round_trip(tmp_path, suffix):
    torch.manual_seed(1)
    m = Net1D(anyppg_config()).eval()
    path = tmp_path / f"anyppg_ckpt{suffix}"
    save_anyppg(m, path)
    back = load_anyppg(path).eval()
    x = torch.randn(2, 1, 1250)
    with torch.no_grad():
        torch.testing.assert_close(back(x), m(x), rtol=0, atol=0)
    for k, v in m.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])


class Evil:
    """An arbitrary object: weights_only loading must refuse it."""


def test_anyppg_rejects_wrong_or_unsafe_checkpoints(tmp_path):
    small = Net1D(Net1DConfig(base_filters=16, filter_list=[16, 32], m_blocks_list=[1, 1]))
    torch.save(small.state_dict(), tmp_path / "small.pth")
    with pytest.raises(InputError, match="does not match the encoder"):
        load_anyppg(tmp_path / "small.pth")
    with pytest.raises(InputError, match="not found"):
        load_anyppg(tmp_path / "none.pth")
    torch.save({"x": Evil()}, tmp_path / "evil.pth")  # weights_only refuses arbitrary objects
    with pytest.raises(InputError, match="holds objects other than tensors .* refused"):
        load_anyppg(tmp_path / "evil.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_anyppg(tmp_path / "garbage.pth")


def test_ecgfounder_wrappers_prefix_and_head(tmp_path):
    cfg = Net1DConfig(base_filters=16, filter_list=[16, 32, 64], m_blocks_list=[1, 1, 1], kernel_size=16, dropout=0.0)
    m = Net1D(cfg)
    state = {f"module.{k}": v for k, v in m.state_dict().items()}
    state["module.dense.weight"] = torch.zeros(150, 64)
    state["module.dense.bias"] = torch.zeros(150)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "ecgfounder.pth")
    loaded, report = load_ecgfounder(tmp_path / "ecgfounder.pth", cfg)
    assert report["ignored"] == ["dense.bias", "dense.weight"] and report["used"] == len(m.state_dict())
    for k, v in m.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    with pytest.raises(InputError, match="missing"):
        load_ecgfounder(tmp_path / "ecgfounder.pth", ecgfounder_config())


def test_checkpoint_with_objects_is_refused_without_advising_unsafe_loading(tmp_path, capsys):
    from encoder.weights_file import read_state_dict
    from phewas.base.errors import InputError

    torch.save({"state": np.arange(3)}, tmp_path / "evil.pth")  # a numpy array needs pickle
    with pytest.raises(InputError) as err:
        read_state_dict(tmp_path / "evil.pth")
    msg = str(err.value)
    assert "refused" in msg and "weights_only=False" not in msg and "weights_only` set to `False" not in msg


def test_encoder_exports_the_checkpoint_functions():
    import encoder
    from encoder import checkpoints

    assert encoder.load_anyppg is checkpoints.load_anyppg
    assert encoder.save_anyppg is checkpoints.save_anyppg
    assert encoder.load_ecgfounder is checkpoints.load_ecgfounder


def direct_clip_loss(p, e, scale):
    """Loop form of the symmetric InfoNCE loss."""
    n = len(p)
    total = 0.0
    for i in range(n):
        row = [scale * float(p[i] @ e[j]) for j in range(n)]
        col = [scale * float(e[i] @ p[j]) for j in range(n)]
        total += -row[i] + np.log(np.sum(np.exp(row)))
        total += -col[i] + np.log(np.sum(np.exp(col)))
    return total / (2 * n)


def test_clip_loss_symmetric_and_equal_to_direct_computation():
    torch.manual_seed(0)
    p = F.normalize(torch.randn(7, 16), dim=-1)
    e = F.normalize(torch.randn(7, 16), dim=-1)
    scale = torch.tensor(14.3)
    loss = clip_loss(p, e, scale)
    assert abs(float(loss) - direct_clip_loss(p.numpy(), e.numpy(), 14.3)) < 1e-5
    assert abs(float(loss) - float(clip_loss(e, p, scale))) < 1e-6
    assert float(clip_loss(p, p, torch.tensor(100.0))) < 0.01  # perfect pairs


def test_temperature_initial_value_and_clamp():
    m = PPGECGClip(Net1D(Net1DConfig(base_filters=16, filter_list=[16], m_blocks_list=[1])), ecg_dim=8,
                   ecg_encoder=None)
    assert abs(float(m.logit_scale.detach().exp()) - 1 / 0.07) < 1e-4
    with torch.no_grad():
        m.logit_scale.fill_(10.0)
    m.clamp_temperature()
    assert abs(float(m.logit_scale.detach().exp()) - 100.0) < 1e-3


def test_weight_decay_only_on_weights():
    m = PPGECGClip(Net1D(Net1DConfig(base_filters=16, filter_list=[16], m_blocks_list=[1])), ecg_dim=8,
                   ecg_encoder=None)
    names = {id(p): n for n, p in m.named_parameters()}
    for g in param_groups(m, 0.1):
        for p in g["params"]:
            n = names[id(p)]
            decayed = g["weight_decay"] > 0
            assert decayed == (p.ndim >= 2 and n != "logit_scale"), n


def test_retrieval_metrics():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(64, 8))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    r = retrieval_metrics(e, e, 16)
    assert r["recall@1"] == 1.0 and r["mrr"] == 1.0 and r["batches"] == 4
    shuffled = retrieval_metrics(e, e[rng.permutation(64)], 16)
    assert shuffled["recall@1"] < 0.3 and shuffled["recall@10"] < 1.0


def test_resumable_batches_continue_exactly():
    full = list(ResumableBatches(50, 8, seed=3, total_steps=20))
    assert len(full) == 20 and all(len(b) == 8 for b in full)
    assert list(ResumableBatches(50, 8, seed=3, start_step=13, total_steps=20)) == full[13:]
    r0 = list(ResumableBatches(50, 8, seed=3, rank=0, world=2, total_steps=20))
    r1 = list(ResumableBatches(50, 8, seed=3, rank=1, world=2, total_steps=20))
    assert sorted(r0[5] + r1[5]) == sorted(full[5])
    assert set(full[0]) != set(full[6])  # a new epoch reshuffles
