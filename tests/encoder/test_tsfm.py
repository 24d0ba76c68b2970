"""MOMENT and Chronos as frozen encoders, through their own packages, from tiny random models the
packages build offline (saved to a folder as the released ones are); skipped where the packages
are not installed (``pip install 'phewas[baselines]'``; ``pip install --no-deps momentfm``)."""

import numpy as np
import pytest
import torch

from encoder.embed import embed, load_encoder
from encoder.resnet1d import fourier_resample


def tiny_moment(folder):
    momentfm = pytest.importorskip("momentfm", reason="momentfm not installed (pip install --no-deps momentfm)")
    t5 = dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, vocab_size=32, feed_forward_proj="gated-gelu",
              is_encoder_decoder=True, dropout_rate=0.1, layer_norm_epsilon=1e-6, relative_attention_num_buckets=32,
              relative_attention_max_distance=128)
    cfg = dict(task_name="embedding", model_name="MOMENT", transformer_type="encoder_only", d_model=32, seq_len=512,
               patch_len=8, patch_stride_len=8, transformer_backbone="google/flan-t5-small", t5_config=t5)
    torch.manual_seed(0)
    pipe = momentfm.MOMENTPipeline(cfg, model_kwargs={"task_name": "embedding"})
    pipe.init()
    pipe.save_pretrained(folder)
    return pipe.eval()


def tiny_chronos2(folder):
    pytest.importorskip("chronos", reason="chronos-forecasting not installed (pip install 'phewas[baselines]')")
    from chronos import Chronos2Model, Chronos2Pipeline
    from chronos.chronos2.config import Chronos2CoreConfig
    cfg = Chronos2CoreConfig(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    cfg.chronos_config = dict(context_length=2048, output_patch_size=16, input_patch_size=16, input_patch_stride=16,
                              quantiles=[0.1, 0.5, 0.9], use_reg_token=True, use_arcsinh=True, max_output_patches=4)
    cfg.architectures = ["Chronos2Model"]
    cfg.chronos_pipeline_class = "Chronos2Pipeline"  # as the released config.json names it
    torch.manual_seed(0)
    pipe = Chronos2Pipeline(Chronos2Model(cfg).eval())
    pipe.save_pretrained(folder)
    return pipe


def windows(n=3):
    return np.random.default_rng(0).normal(size=(n, 1250)).astype(np.float32)


def test_moment_embeds_windows_resampled_to_its_input(tmp_path):
    reference = tiny_moment(tmp_path / "moment")
    model, desc = load_encoder(f"moment:{tmp_path / 'moment'}")
    assert desc["kind"] == "moment" and model.out_dim == 32
    x = windows()
    ours = embed(model, x, device="cpu", bf16=False)
    with torch.no_grad():  # the package's own call on the same 512-sample input
        direct = reference(x_enc=fourier_resample(torch.from_numpy(x)[:, None], 512)).embeddings.numpy()
    np.testing.assert_allclose(ours, direct, atol=1e-5)


def test_chronos2_embeds_the_mean_of_its_tokens(tmp_path):
    reference = tiny_chronos2(tmp_path / "chronos")
    model, desc = load_encoder(f"chronos:{tmp_path / 'chronos'}")
    assert desc["kind"] == "chronos" and model.out_dim == 32
    x = windows()
    ours = embed(model, x, device="cpu", bf16=False)
    tokens, _ = reference.embed(torch.from_numpy(x)[:, None])
    np.testing.assert_allclose(ours, np.stack([t.float().mean((0, 1)).numpy() for t in tokens]), atol=1e-5)


def test_a_missing_folder_is_a_one_line_error(tmp_path):
    from phewas.base.errors import InputError
    with pytest.raises(InputError, match="folder of a downloaded model"):
        load_encoder(f"chronos:{tmp_path / 'nowhere'}")
