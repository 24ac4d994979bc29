"""Codecs: the pixel-space encoding against its closed form, and a tiny random diffusers VAE."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import tiny_model_config

from worldmem.models import IdentityCodec, VaeCodec, build_codec


def _frames(B=2, T=3, S=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(B, T, 3, S, S, generator=g)
    depth = 0.25 + 20 * torch.rand(B, T, 1, S, S, generator=g)
    depth[:, :, :, :2] = 0.0  # unknown
    return rgb, depth


def test_identity_encoding_closed_form():
    codec = IdentityCodec(depth_near_m=0.5)
    rgb = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 3, 1, 1)
    depth = torch.tensor([[0.0, 0.25, 0.5, 1.0, 2.0]]).view(1, 1, 1, 1, 5)
    x = codec.encode(rgb.expand(1, 1, 3, 1, 5), depth)
    assert x.shape == (1, 1, 4, 1, 5)
    torch.testing.assert_close(x[0, 0, :3, 0, 0], torch.tensor([-1.0, 0.0, 1.0]))
    # inverse depth near/d clamped to [0, 1], then 2 u - 1; unknown (0) -> -1
    torch.testing.assert_close(x[0, 0, 3, 0], torch.tensor([-1.0, 1.0, 1.0, 0.0, -0.5]))


def test_identity_round_trip():
    codec = IdentityCodec(depth_near_m=0.25)
    rgb, depth = _frames()
    rgb2, depth2 = codec.decode(codec.encode(rgb, depth))
    torch.testing.assert_close(rgb2, rgb, atol=1e-6, rtol=0)
    torch.testing.assert_close(depth2, depth, atol=0, rtol=1e-5)  # unknown stays 0
    m = codec.encode_memory(rgb, depth, (depth > 5).float())
    assert m.shape == (2, 3, 5, 16, 16)
    torch.testing.assert_close(m[:, :, 4:], (depth > 5).float())
    assert torch.all(m[:, :, :4][(depth <= 5).expand(-1, -1, 4, -1, -1)] == 0)


def test_identity_provenance_channel_is_the_observed_part_of_the_render():
    rgb, depth = _frames()
    mask = (depth > 5).float()
    observed = torch.rand(mask.shape, generator=torch.Generator().manual_seed(1)).round()
    plain = IdentityCodec().encode_memory(rgb, depth, mask, observed)  # no provenance: ignored
    codec = IdentityCodec(provenance=True)
    m = codec.encode_memory(rgb, depth, mask, observed)
    assert codec.memory_channels == 6 and m.shape == (2, 3, 6, 16, 16)
    torch.testing.assert_close(m[:, :, :5], plain)
    torch.testing.assert_close(m[:, :, 5:], observed * mask)  # nothing observed off the mask
    assert 0 < m[:, :, 5].sum() < m[:, :, 4].sum()
    # no observed map: every point of the render was observed
    torch.testing.assert_close(codec.encode_memory(rgb, depth, mask)[:, :, 5:], mask)
    with pytest.raises(ValueError, match="observed"):
        codec.encode_memory(rgb, depth, mask, observed[:, :1])


def test_identity_rejects_bad_shapes():
    codec = IdentityCodec()
    rgb, depth = _frames()
    with pytest.raises(ValueError, match="depth must be"):
        codec.encode(rgb, depth[:, :, :, :8])
    with pytest.raises(ValueError, match="rgb must be"):
        codec.encode(rgb[:, 0], depth)


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
        scaling_factor=0.5,
    )
    path = tmp_path_factory.mktemp("vae")
    vae.save_pretrained(path)
    return path


def test_vae_codec_matches_the_autoencoder(vae_dir):
    from diffusers import AutoencoderKL

    codec = VaeCodec(vae_dir, depth_near_m=0.25)
    assert (codec.channels, codec.memory_channels, codec.downsample) == (8, 9, 2)
    vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    rgb, depth = _frames(B=1, T=2)
    z = codec.encode(rgb, depth)
    assert z.shape == (1, 2, 8, 8, 8)
    with torch.no_grad():
        ref_rgb = vae.encode(rgb[0] * 2 - 1).latent_dist.mean * 0.5
        inv = torch.where(depth[0] > 0, (0.25 / depth[0].clamp(min=1e-6)).clamp(max=1), 0)
        ref_d = vae.encode((inv * 2 - 1).repeat(1, 3, 1, 1)).latent_dist.mean * 0.5
        torch.testing.assert_close(z[0, :, :4], ref_rgb, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(z[0, :, 4:], ref_d, atol=1e-5, rtol=1e-5)
        rgb2, depth2 = codec.decode(z)
        ref_img = vae.decode(ref_rgb / 0.5).sample
    assert rgb2.shape == rgb.shape and depth2.shape == depth.shape
    torch.testing.assert_close(rgb2[0], ((ref_img + 1) / 2).clamp(0, 1), atol=1e-5, rtol=1e-5)
    assert torch.all(depth2 >= 0)
    mask = torch.zeros(1, 2, 1, 16, 16)
    mask[..., :, :7] = 1.0  # covers cells 0..2 fully, cell 3 half
    mem = codec.encode_memory(rgb, depth, mask)
    assert mem.shape == (1, 2, 9, 8, 8)
    torch.testing.assert_close(mem[0, 0, 8, 0], torch.tensor([1, 1, 1, 0.5, 0, 0, 0, 0.0]))
    assert torch.all(mem[:, :, :8, :, 4:] == 0)
    # with provenance: the fraction of each cell covered by observed points comes last
    observed = torch.zeros_like(mask)
    observed[..., :, :3] = 1.0  # cell 0 fully observed, cell 1 half, the rest generated
    both = VaeCodec(vae_dir, depth_near_m=0.25, provenance=True)
    mem2 = both.encode_memory(rgb, depth, mask, observed)
    assert both.memory_channels == 10 and mem2.shape == (1, 2, 10, 8, 8)
    torch.testing.assert_close(mem2[:, :, :9], mem)
    torch.testing.assert_close(mem2[0, 0, 9, 0], torch.tensor([1, 0.5, 0, 0, 0, 0, 0, 0.0]))
    torch.testing.assert_close(both.encode_memory(rgb, depth, mask)[:, :, 9], mem[:, :, 8])
    known = codec.depth_known(depth)
    assert known.shape == (1, 2, 1, 8, 8) and torch.all(known[..., 0, :] == 0)
    assert torch.all(known[..., 1:, :] == 1)


def test_build_codec_checks_the_model_config(vae_dir):
    assert isinstance(build_codec(tiny_model_config()), IdentityCodec)
    cfg = tiny_model_config(codec="vae", codec_path=str(vae_dir), latent_channels=8)
    with pytest.raises(ValueError, match="latent_downsample"):
        build_codec(cfg)
    cfg.latent_downsample = 2
    assert isinstance(build_codec(cfg), VaeCodec)
    assert build_codec(replace(cfg, memory_provenance=True)).memory_channels == 10
    cfg.codec_path = str(vae_dir / "missing")
    with pytest.raises(ValueError, match="no config.json"):
        build_codec(cfg)
