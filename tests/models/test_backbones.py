"""Backbone adapters: tiny random-weight Wan and CogVideoX transformers (and their VAEs and a
tiny T5) saved with save_pretrained, loaded through the adapters, checked against the
unmodified diffusers models and schedulers."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO, tiny_memory_config
from diffusers import (
    AutoencoderKLCogVideoX,
    AutoencoderKLWan,
    CogVideoXDDIMScheduler,
    CogVideoXPipeline,
    CogVideoXTransformer3DModel,
    WanTransformer3DModel,
)

from worldmem.config import BackboneConfig, ModelConfig, TrainRootConfig, load_config
from worldmem.data.batch import FrameSet, WorldBatch
from worldmem.diffusion import FlowMatching
from worldmem.geometry import intrinsics_from_fov
from worldmem.models.backbones import (
    TRAINABLE_MODES,
    CogVideoXWorldModel,
    T5TextEncoder,
    VideoVaeCodec,
    WanWorldModel,
    build_world_model,
)
from worldmem.models.interface import ModelFrames, WorldModel
from worldmem.models.text import TextStates
from worldmem.pipeline import WorldPipeline

SIZE = 32  # pixels; the VAEs downsample 8x and the transformers patch 2x2 -> 4 tokens a frame
Z = 4  # VAE latent channels; the world model's latent is rgb | depth = 2 Z
TEXT_DIM, TEXT_TOKENS = 16, 8
CLASSES = {"wan": WanWorldModel, "cogvideox": CogVideoXWorldModel}


def _tiny_wan() -> WanTransformer3DModel:
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=Z,
        out_channels=Z, text_dim=TEXT_DIM, freq_dim=32, ffn_dim=32, num_layers=2,
        rope_max_seq_len=32,
    )  # fmt: skip


def _tiny_cogvideox() -> CogVideoXTransformer3DModel:
    return CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=Z, out_channels=Z,
        time_embed_dim=16, text_embed_dim=TEXT_DIM, num_layers=2, sample_width=8,
        sample_height=8, sample_frames=9, patch_size=2, max_text_seq_length=TEXT_TOKENS,
        use_rotary_positional_embeddings=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Diffusers pipeline folders (transformer/, vae/, ...) with tiny random weights."""
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("backbones")
    wan, cog = root / "wan", root / "cogvideox"
    _tiny_wan().save_pretrained(wan / "transformer")
    AutoencoderKLWan(
        base_dim=8, z_dim=Z, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
        temperal_downsample=[False, True, True], latents_mean=[0.1] * Z, latents_std=[2.0] * Z,
    ).save_pretrained(wan / "vae")  # fmt: skip
    t5 = T5Config(
        vocab_size=384, d_model=TEXT_DIM, d_kv=8, d_ff=32, num_layers=1, num_heads=2
    )  # ByT5's byte vocabulary: no tokenizer file to download
    T5EncoderModel(t5).save_pretrained(wan / "text_encoder")
    ByT5Tokenizer().save_pretrained(wan / "tokenizer")
    _tiny_cogvideox().save_pretrained(cog / "transformer")
    AutoencoderKLCogVideoX(
        block_out_channels=(8, 8, 8, 8), latent_channels=Z, layers_per_block=1,
        norm_num_groups=4, sample_height=SIZE, sample_width=SIZE, scaling_factor=0.7,
    ).save_pretrained(cog / "vae")  # fmt: skip
    CogVideoXDDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
        prediction_type="v_prediction", rescale_betas_zero_snr=True, snr_shift_scale=1.0,
        timestep_spacing="trailing",
    ).save_pretrained(cog / "scheduler")  # fmt: skip
    return {"wan": wan, "cogvideox": cog}


def _model(kind: str, folders, lora_rank: int = 0, text: bool = False):
    torch.manual_seed(1)
    return CLASSES[kind].from_backbone(
        folders[kind],
        image_size=SIZE, latent_downsample=8, latent_channels=2 * Z, max_frames=8,
        text_encoder_path=str(folders[kind]) if text else None, text_max_tokens=TEXT_TOKENS,
        lora_rank=lora_rank,
    )  # fmt: skip


def _reference(kind: str, folders):
    cls = WanTransformer3DModel if kind == "wan" else CogVideoXTransformer3DModel
    return cls.from_pretrained(folders[kind] / "transformer").eval()


def _frames(B: int, n: int, sigma: float, gen: torch.Generator) -> ModelFrames:
    c2w = torch.eye(4).repeat(B, n, 1, 1)
    c2w[..., :3, 3] = torch.randn(B, n, 3, generator=gen) * 0.3
    K = intrinsics_from_fov(75.0, SIZE, SIZE).expand(B, n, 3, 3)
    return ModelFrames(
        x=torch.randn(B, n, 2 * Z, 4, 4, generator=gen),
        sigma=torch.full((B, n), sigma),
        c2w=c2w,
        K=K,
        valid=torch.ones(B, n, dtype=torch.bool),
    )


def _text(B: int, gen: torch.Generator) -> TextStates:
    states = torch.randn(B, TEXT_TOKENS, TEXT_DIM, generator=gen)
    return TextStates(states, torch.ones(B, TEXT_TOKENS, dtype=torch.bool))


def _cogvideox_rotary(reference, frames: int):
    """The rotary tables CogVideoXPipeline builds for this latent size (its own method)."""
    pipe = SimpleNamespace(vae_scale_factor_spatial=8, transformer=reference)
    return CogVideoXPipeline._prepare_rotary_positional_embeddings(
        pipe, SIZE, SIZE, frames, torch.device("cpu")
    )


@pytest.mark.parametrize("kind", ["wan", "cogvideox"])
def test_adapters_are_world_models(kind, folders):
    assert isinstance(_model(kind, folders), WorldModel)


def test_wan_at_init_gives_exactly_the_backbone_output(folders):
    g = torch.Generator().manual_seed(0)
    model, ref = _model("wan", folders).eval(), _reference("wan", folders)
    B, T = 2, 2
    target, context = _frames(B, T, 0.6, g), _frames(B, 2, 0.0, g)
    keyframes, text = _frames(B, 1, 0.0, g), _text(B, g)
    memory = torch.randn(B, T, 2 * Z + 1, 4, 4, generator=g)
    with torch.no_grad():
        out = model(target, memory=memory, text=text).sample
        want = ref(target.x[:, :, :Z].transpose(1, 2), torch.full((B,), 600.0), text.states)
        assert torch.equal(out[:, :, :Z], want.sample.transpose(1, 2))
        assert torch.equal(out[:, :, Z:], torch.zeros_like(out[:, :, Z:]))  # depth head: zero
        # memory frames in the sequence at timestep 0, targets at 1000 s, one timestep a token
        out = model(target, context=context, keyframes=keyframes, memory=memory, text=text)
        seq = torch.cat([keyframes.x, context.x, target.x], 1)[:, :, :Z]
        t = torch.tensor([0.0, 0.0, 0.0, 600.0, 600.0]).repeat_interleave(4).expand(B, -1)
        want = ref(seq.transpose(1, 2), t, text.states).sample.transpose(1, 2)[:, -T:]
        assert torch.equal(out.sample[:, :, :Z], want)


def test_cogvideox_at_init_gives_exactly_the_backbone_output(folders):
    g = torch.Generator().manual_seed(0)
    model, ref = _model("cogvideox", folders).eval(), _reference("cogvideox", folders)
    B, T = 2, 2
    target, context, text = _frames(B, T, 1.0, g), _frames(B, 2, 0.0, g), _text(B, g)
    memory = torch.randn(B, T, 2 * Z + 1, 4, 4, generator=g)
    with torch.no_grad():
        native = model.predict_native(target, context=context, memory=memory, text=text)
        out = model(target, context=context, memory=memory, text=text).sample
        seq = torch.cat([context.x, target.x], 1)[:, :, :Z]
        v = ref(
            hidden_states=seq,
            encoder_hidden_states=text.states,
            timestep=torch.full((B,), 999),
            image_rotary_emb=_cogvideox_rotary(ref, 4),
        ).sample[:, -T:]
    # pure noise: flow level 1 is DDPM timestep 999 (zero terminal SNR), latents unscaled
    assert torch.equal(native["timesteps"], torch.full((B,), 999.0))
    assert torch.equal(native["prediction"], v)
    # velocity noise - x0 = x + v there (a = 0, b = 1), and the depth head starts at zero
    assert torch.equal(out[:, :, :Z], target.x[:, :, :Z] + v)
    assert torch.equal(out[:, :, Z:], torch.zeros_like(out[:, :, Z:]))


def test_cogvideox_velocity_gives_the_schedulers_x0_prediction(folders):
    """The flow velocity implies the same clean latent as CogVideoX's own DDIM scheduler
    computes from the backbone's v-prediction at the matching timestep."""
    g = torch.Generator().manual_seed(0)
    model, ref = _model("cogvideox", folders).eval(), _reference("cogvideox", folders)
    sched = CogVideoXDDIMScheduler.from_pretrained(folders["cogvideox"] / "scheduler")
    sched.set_timesteps(50)
    t = 600
    ac = sched.alphas_cumprod[t].double()
    a, b = ac.sqrt(), (1 - ac).sqrt()
    s = float(b / (a + b))  # the flow noise level of timestep t
    B, text = 1, _text(1, g)
    target = _frames(B, 1, s, g)
    x0 = torch.randn(B, 1, Z, 4, 4, generator=g)
    noise = torch.randn(B, 1, Z, 4, 4, generator=g)
    target.x[:, :, :Z] = (1 - s) * x0 + s * noise
    with torch.no_grad():
        assert model.flow_sigma_to_timestep(torch.tensor([s])).item() == pytest.approx(t, abs=1e-3)
        u = model(target, text=text).sample[:, :, :Z]
        x_t = (a * x0 + b * noise).float()
        v = ref(
            hidden_states=x_t,
            encoder_hidden_states=text.states,
            timestep=torch.tensor([t]),
            image_rotary_emb=_cogvideox_rotary(ref, 1),
        ).sample
    want = sched.step(v[:, 0].transpose(0, 1)[None], t, x_t[:, 0].transpose(0, 1)[None])
    got = target.x[:, :, :Z] - s * u  # flow: x0 = x_s - s (noise - x0)
    torch.testing.assert_close(
        got[:, 0].transpose(0, 1)[None], want.pred_original_sample, atol=1e-4, rtol=1e-4
    )


@pytest.mark.parametrize("kind", ["wan", "cogvideox"])
def test_invalid_memory_frames_are_never_attended(kind, folders):
    g = torch.Generator().manual_seed(0)
    model = _model(kind, folders).eval()
    target, context, text = _frames(1, 2, 0.5, g), _frames(1, 2, 0.0, g), _text(1, g)
    context.valid[:, 0] = False
    with torch.no_grad():
        a = model(target, context=context, text=text).sample
        context.x[:, 0] = torch.randn(context.x[:, 0].shape, generator=g) * 10
        b = model(target, context=context, text=text).sample
        context.valid[:, 0] = True
        c = model(target, context=context, text=text).sample
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert not torch.allclose(a, c, atol=1e-3)


def _world_batch(B: int, T: int, gen: torch.Generator) -> WorldBatch:
    def frame_set(n):
        c2w = torch.eye(4).repeat(B, n, 1, 1)
        c2w[..., :3, 3] = torch.randn(B, n, 3, generator=gen) * 0.3
        return FrameSet(
            rgb=torch.rand(B, n, 3, SIZE, SIZE, generator=gen),
            depth=1.0 + torch.rand(B, n, 1, SIZE, SIZE, generator=gen),
            c2w=c2w,
            K=intrinsics_from_fov(75.0, SIZE, SIZE).expand(B, n, 3, 3).clone(),
            valid=torch.ones(B, n, dtype=torch.bool),
        )

    return WorldBatch(
        target=frame_set(T),
        context=frame_set(1),
        keyframes=frame_set(1),
        memory_rgb=torch.rand(B, T, 3, SIZE, SIZE, generator=gen),
        memory_depth=1.0 + torch.rand(B, T, 1, SIZE, SIZE, generator=gen),
        memory_mask=torch.ones(B, T, 1, SIZE, SIZE),
        caption=[""] * B,
        is_revisit=torch.zeros(B, dtype=torch.bool),
    )


ADDED = ("input_embed.", "camera_embed.", "frame_embed.", "depth_head.")


@pytest.mark.parametrize("kind", ["wan", "cogvideox"])
@pytest.mark.parametrize("mode", TRAINABLE_MODES)
def test_a_training_step_changes_only_what_the_mode_trains(kind, mode, folders):
    g = torch.Generator().manual_seed(0)
    model = _model(kind, folders, lora_rank=4 if mode == "lora" else 0)
    model.set_trainable(mode)
    codec = VideoVaeCodec(folders[kind] / "vae")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = FlowMatching().training_losses(model, codec, _world_batch(1, 2, g), generator=g)
    loss["loss"].backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    added = {k for k in changed if k.startswith(ADDED)}
    lora = {k for k in changed if ".lora_A." in k or ".lora_B." in k}
    base = changed - added - lora
    assert all(any(k.startswith(m) for k in added) for m in ADDED)  # every added layer moved
    if mode == "adapter":
        assert not lora and not base
    elif mode == "lora":
        assert lora == {k for k in before if ".lora_A." in k or ".lora_B." in k} and not base
    else:
        assert len(base) > len(before) // 2  # the backbone itself is trained


@pytest.mark.parametrize("kind", ["wan", "cogvideox"])
def test_copies_for_ema_run_on_their_own_weights(kind, folders):
    g = torch.Generator().manual_seed(0)
    model = _model(kind, folders).eval()
    target, text = _frames(1, 2, 0.5, g), _text(1, g)
    ema = copy.deepcopy(model)
    with torch.no_grad():
        a = model(target, text=text).sample
        # (a copy's tensors sit elsewhere in memory; CPU kernels may then round differently)
        torch.testing.assert_close(ema(target, text=text).sample, a, atol=1e-5, rtol=0)
        ema.depth_head.bias.fill_(1.0)
        assert torch.equal(model(target, text=text).sample, a)
        assert torch.equal(ema(target, text=text).sample[:, :, Z:], torch.ones_like(a[:, :, Z:]))


def _tiny_model_config(kind: str, folders) -> ModelConfig:
    return ModelConfig(
        image_size=SIZE, patch_size=2, chunk_frames=2, max_frames=8, codec="vae",
        codec_path=str(folders[kind] / "vae"), latent_channels=2 * Z, latent_downsample=8,
        text_encoder="hf", text_encoder_path=str(folders[kind]) if kind == "wan" else None,
        text_max_tokens=TEXT_TOKENS,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["wan", "cogvideox"])
def test_world_pipeline_walks_out_and_back_through_a_backbone(kind, folders, tmp_path):
    from worldmem.data.synthetic import make_world

    mcfg = _tiny_model_config(kind, folders)
    mode = "lora" if kind == "cogvideox" else "adapter"
    bcfg = BackboneConfig(kind=kind, path=str(folders[kind]), trainable=mode, lora_rank=4)
    model, codec = build_world_model(mcfg, bcfg)
    pipe = WorldPipeline(model, mcfg, tiny_memory_config(), steps=2, codec=codec)
    world = make_world(0, "room")
    rgb, depth = world.render(torch.eye(4)[None], pipe.K[None], SIZE, SIZE)
    depth = depth.clamp(min=0)  # the identity camera sees past the room here: depth unknown
    prompt = "a blue corridor" if kind == "wan" else ""
    pipe.start(prompt=prompt, image=rgb[0], depth=depth[0], seed=0)
    points = pipe.spatial.num_points
    chunk = pipe.step(["w", "w", "s", "s"])  # out two steps and back to the start
    assert chunk.rgb.shape == (4, 3, SIZE, SIZE) and chunk.depth.shape == (4, 1, SIZE, SIZE)
    assert torch.isfinite(chunk.rgb).all() and torch.isfinite(chunk.depth).all()
    assert pipe.frame_count == 5 and len(pipe.working.frames()[0]) == 2
    assert pipe.spatial.num_points > points  # the generated frames were fused in
    assert chunk.memory_mask[-1].mean() > 0.5  # back at the start: the memory covers the view
    # the pipeline folder round-trips through the backbone class, trained weights included
    with torch.no_grad():
        for p in model.trainable_parameters(mode):
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
    pipe.save_pretrained(tmp_path / "pipe")
    again = WorldPipeline.from_pretrained(tmp_path / "pipe", device="cpu")
    assert type(again.model) is CLASSES[kind] and isinstance(again.codec, VideoVaeCodec)
    for p in (pipe, again):
        p.start(prompt=prompt, image=rgb[0], depth=depth[0], seed=3)
    # (equal up to CPU kernels rounding differently for tensors at other addresses)
    torch.testing.assert_close(pipe.step(["w"]).rgb, again.step(["w"]).rgb, atol=1e-4, rtol=0)


def test_t5_states_follow_each_pipelines_padding(folders):
    from transformers import AutoTokenizer, T5EncoderModel

    root = folders["wan"]
    tok = AutoTokenizer.from_pretrained(root / "tokenizer")
    enc = T5EncoderModel.from_pretrained(root / "text_encoder").eval()
    caption = "hall"  # 4 bytes + </s> = 5 real tokens of 8
    ids = tok([caption], padding="max_length", max_length=TEXT_TOKENS, return_tensors="pt")
    with torch.no_grad():
        full = enc(input_ids=ids.input_ids).last_hidden_state[0]
        masked = enc(input_ids=ids.input_ids, attention_mask=ids.attention_mask)
    zeros = T5TextEncoder(root, TEXT_TOKENS, "zeros")([caption, ""])
    tokens = T5TextEncoder(root / "text_encoder", TEXT_TOKENS, "tokens")([caption])
    torch.testing.assert_close(zeros.states[0, :5], masked.last_hidden_state[0, :5])
    assert torch.equal(zeros.states[0, 5:], torch.zeros(3, TEXT_DIM))
    assert zeros.mask[0].tolist() == [True] * 5 + [False] * 3 and zeros.mask[1].sum() == 1
    torch.testing.assert_close(tokens.states[0], full)


def test_bad_configurations_are_refused(folders):
    with pytest.raises(ValueError, match="latent_channels must be 2 x"):
        WanWorldModel(dict(_tiny_wan().config), image_size=SIZE, latent_channels=Z)
    i2v = dict(_tiny_wan().config, image_dim=8, added_kv_proj_dim=8)
    with pytest.raises(ValueError, match="image-to-video"):
        WanWorldModel(i2v, image_size=SIZE, latent_channels=2 * Z)
    with pytest.raises(ValueError, match="needs LoRA layers"):
        _model("wan", folders).set_trainable("lora")
    with pytest.raises(ValueError, match="needs a text encoder|need a text encoder"):
        _model("cogvideox", folders).encode_text(["a room"])
    with pytest.raises(ValueError, match="AutoencoderKLWan"):
        VideoVaeCodec(folders["wan"] / "transformer")


@pytest.mark.parametrize("name", ["wan-1.3b", "cogvideox-5b"])
def test_presets_load_and_shard_each_transformer_block(name):
    from lightning.pytorch.strategies import FSDPStrategy

    from worldmem.training.trainer import _strategy

    cfg = load_config(TrainRootConfig, [REPO / "configs" / "train" / f"{name}.yaml"])
    assert cfg.backbone.kind == name.split("-")[0]
    assert cfg.model.codec == "vae" and cfg.model.text_encoder == "hf"
    assert cfg.data.image_size == cfg.model.image_size
    assert cfg.data.chunk_frames == cfg.model.chunk_frames
    frames = cfg.data.keyframes + cfg.data.context_frames + cfg.data.chunk_frames
    assert frames <= cfg.model.max_frames
    strategy = _strategy(cfg.train)
    assert isinstance(strategy, FSDPStrategy) and strategy.kwargs["use_orig_params"]
    policy = strategy.kwargs["auto_wrap_policy"]
    model = _tiny_wan() if name.startswith("wan") else _tiny_cogvideox()
    units = [m for m in model.modules() if policy(module=m, recurse=False, nonwrapped_numel=0)]
    blocks = model.blocks if name.startswith("wan") else model.transformer_blocks
    assert units == list(blocks)
