"""The video diffusion transformer (DiT) of the world model.

One token sequence per sample holds three groups of frames, in this order:

    context (working memory, clean) | keyframes (episodic memory, clean) | targets (noisy)

Every frame has its own noise level ``sigma`` (diffusion-forcing style), embedded and used
for adaLN-Zero modulation of that frame's tokens. A convolutional stem turns each frame (its
pixels, and for targets the spatial-memory render at their camera, pixel-aligned) into one
token per ``patch_size`` square; each token also carries the Pluecker rays of its pixels
relative to the first target camera, a 2D position, a role (context / keyframe / target) and
a slot (its index within the group).

Output. A convolutional decoder with skip connections from the target's stem (a U-Net around
the transformer, so there is no patch-grid noise and fine detail of the inputs can pass
straight through) draws a correction to a prior and predicts a per-pixel gate:
``x0 = prior + (1 - g * valid) * drawn``. The prior is the spatial-memory render with its
holes push-pull filled (``memory_prior``: the smooth continuation of what surrounds each hole,
tending far from it to the memory frames' mean, or with ``hole_prior="elevation"`` to their mean
along each pixel's elevation, ``models/elevation.py``; with ``"elevation_depth"`` the holes'
depth is that profile's alone, not continued from beside them; zeros for an empty render). Where the
render is valid the gate ``g`` starts near 1, so valid memory comes out unchanged unless the
model has learned a reason to change it, and what the memory holds is not limited by what the
network can draw. In holes the network draws freely
on top of the fill, so an undertrained model degrades to the smooth fill, not to noise. With
``hole_tint`` below 1 the mean of its drawing there is scaled by it (``scale_hole_mean``; 0:
the holes keep the prior's mean colour), so a tint the model leans to (the training frames'
average) builds up more slowly chunk after chunk as what it invents becomes the next
chunk's memory.

Attention is block-causal: context and keyframe tokens attend only to context and keyframe
tokens, target tokens attend to everything, and frames with ``valid=False`` are never keys
(a frame always sees itself, so no row is empty). Hence the context's keys and values do
not depend on the targets and are cached once per chunk (``encode_context`` -> ``KVCache``).
Text enters by cross-attention in every block.

The model knows nothing about the noise process beyond the rectified-flow path
``x_sigma = (1 - sigma) x0 + sigma noise`` (see ``worldmem.diffusion``): it returns the clean
estimate ``x0`` and the velocity ``(x_sigma - x0) / sigma`` of every target frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import Tensor, nn

from worldmem.config import HOLE_PRIORS, ModelConfig
from worldmem.memory.fill import push_pull_fill
from worldmem.models.blocks import ConvDecoder, ConvStem, DiTBlock, FinalLayer
from worldmem.models.elevation import elevation_default, elevation_profile
from worldmem.models.embeddings import (
    CameraEmbedding,
    TimestepEmbedding,
    camera_rays,
    sincos_2d,
)
from worldmem.models.frame_cache import StemCache
from worldmem.models.interface import ROLES, ModelFrames, WorldModelOutput
from worldmem.models.text import ByteTextEncoder, HFTextEncoder, TextStates, minilm_path

__all__ = [
    "WorldDiT",
    "WorldDiTOutput",
    "ModelFrames",
    "KVCache",
    "ROLES",
    "memory_prior",
    "scale_hole_mean",
]

# The output type under its earlier name (ModelFrames and ROLES are re-exported likewise).
WorldDiTOutput = WorldModelOutput


@dataclass
class KVCache:
    """Context and keyframe keys/values of every block, computed once per chunk.

    keys, values: one ``(B, heads, Lc, head_dim)`` per block; frame_valid ``(B, Fc)`` bool
    (which context/keyframe frames may be attended); text: the projected text states;
    frame_mean: what the hole fill tends to far from memory, from the context and keyframes:
    ``frames_mean`` ``(B, C)``, or with ``hole_prior="elevation"`` ``elevation_profile``'s
    (means ``(B, C, bins)``, up ``(B, 3)``).
    """

    keys: list[Tensor]
    values: list[Tensor]
    frame_valid: Tensor
    text: TextStates
    frame_mean: Tensor | tuple[Tensor, Tensor] | None = None


# velocities are (x_sigma - x0) / sigma; sigma is floored so a clean target cannot divide by 0
_MIN_SIGMA = 1e-3
_GATE_INIT_LOGIT = 3.0  # sigmoid(3) = 0.95: valid memory passes through from the start


def frames_mean(*groups: ModelFrames | None) -> Tensor | None:
    """The mean value of every channel over the valid frames of ``groups`` (each ``(B, N, C, h,
    w)`` ``ModelFrames`` or None) -> ``(B, C)`` (zeros where a sample has no valid frame), or
    None when no group has frames."""
    sums, counts = None, None
    for g in groups:
        if g is None or g.num == 0:
            continue
        v = g.valid.to(g.x.dtype)  # (B, N)
        s = (g.x.mean((3, 4)) * v[..., None]).sum(1)
        sums = s if sums is None else sums + s
        counts = v.sum(1) if counts is None else counts + v.sum(1)
    return None if sums is None else sums / counts.clamp(min=1)[:, None]


def memory_prior(
    memory: Tensor,
    default: Tensor | None = None,
    channels: int | None = None,
    depth_from_default: bool = False,
) -> tuple[Tensor, Tensor]:
    """The prior each target's output draws on: memory ``(B, T, C + 1 [+ 1], h, w)`` (C frame
    channels, validity, then what was observed when the model takes provenance) -> the render
    with its holes push-pull filled ``(B, T, C, h, w)`` and ``(B, T)`` bool, False (and the
    prior zeros) where the render has no valid pixel.

    ``default`` ``(B, C)`` (``frames_mean`` of the memory frames) or ``(B, T, C, h, w)``
    (``elevation_default``): what the fill tends to far from the render's valid pixels
    (``push_pull_fill``). ``channels``: C (None: all but one). ``depth_from_default``: the
    holes of the last channel (depth) take ``default ``(B, T, C, h, w)`` itself, not the
    continuation of the depth beside them (``hole_prior="elevation_depth"``)."""
    B, T = memory.shape[:2]
    C = memory.shape[2] - 1 if channels is None else channels
    if default is not None:
        default = default[:, None].expand(B, T, C) if default.dim() == 2 else default
        default = default.flatten(0, 1)
    valid = memory[:, :, C : C + 1].flatten(0, 1) > 0.5
    x = memory[:, :, :C].flatten(0, 1)
    if depth_from_default:
        if default is None or default.dim() != 4:
            raise ValueError("memory_prior: depth_from_default needs a (B, T, C, h, w) default")
        prior, _ = push_pull_fill(x[:, :-1], valid, default[:, :-1])
        prior = torch.cat([prior, torch.where(valid, x[:, -1:], default[:, -1:])], 1)
    else:
        prior, _ = push_pull_fill(x, valid, default)
    has = valid.flatten(1).any(1)  # an empty render is no prior, with or without a default
    prior = torch.where(has[:, None, None, None], prior, torch.zeros_like(prior))
    return prior.unflatten(0, (B, T)), has.unflatten(0, (B, T))


def scale_hole_mean(
    drawn: Tensor, valid: Tensor, has: Tensor, keep: float, channels: int = 3
) -> Tensor:
    """``drawn`` ``(B, T, C, h, w)`` with the mean of its first ``channels`` channels over
    each frame's holes (``valid`` ``(B, T, 1, h, w)`` 0) scaled by ``keep`` in those holes
    (0: subtracted), in the frames whose render has a prior (``has`` ``(B, T)``); valid
    pixels, the other channels (depth) and frames without a prior are left as they are."""
    hole = (1 - valid) * has[:, :, None, None, None].to(valid.dtype)
    n = hole.sum((-2, -1), keepdim=True).clamp(min=1)
    colour = drawn[:, :, :channels]
    mean = (colour * hole).sum((-2, -1), keepdim=True) / n
    return torch.cat([colour - (1 - keep) * mean * hole, drawn[:, :, channels:]], 2)


class WorldDiT(ModelMixin, ConfigMixin):
    """Camera-, memory- and text-conditioned video DiT; constructor args = ``ModelConfig``.
    A ``WorldModel`` (``models/interface.py``) whose ``encode_context`` cache is a ``KVCache``.

    ``codec``, ``codec_path`` and ``depth_near_m`` are not used by the network itself; they
    are stored in its config so a saved model says which codec its latents belong to.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        image_size: int = 64,
        patch_size: int = 8,
        hidden_size: int = 256,
        depth: int = 6,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        chunk_frames: int = 2,
        max_frames: int = 16,
        codec: str = "identity",
        codec_path: str | None = None,
        latent_channels: int = 4,
        latent_downsample: int = 1,
        text_encoder: str = "bytes",
        text_encoder_path: str | None = None,
        text_max_tokens: int = 64,
        text_width: int = 256,
        text_layers: int = 2,
        depth_near_m: float = 0.25,
        gradient_checkpointing: bool = False,
        conv_widths: tuple[int, ...] | list[int] = (32, 64, 128),
        memory_provenance: bool = False,
        hole_prior: str = "mean",
        hole_tint: float = 1.0,
    ):
        super().__init__()
        if hole_prior not in HOLE_PRIORS:
            raise ValueError(f"WorldDiT: hole_prior '{hole_prior}' is not one of {HOLE_PRIORS}")
        if not 0 <= hole_tint <= 1:
            raise ValueError(f"WorldDiT: hole_tint {hole_tint} is not in [0, 1]")
        if hole_tint != 1 and codec != "identity":
            raise ValueError("WorldDiT: hole_tint below 1 needs codec identity (colour channels)")
        grid = image_size // latent_downsample
        if image_size % latent_downsample or grid % patch_size:
            raise ValueError(
                f"WorldDiT: image_size {image_size} / latent_downsample {latent_downsample} "
                f"must be an integer divisible by patch_size {patch_size}"
            )
        widths = tuple(int(w) for w in conv_widths)
        if 2 ** len(widths) != patch_size or any(w < 1 for w in widths):
            raise ValueError(
                f"WorldDiT: conv_widths {list(widths)} must have log2(patch_size) = "
                f"log2({patch_size}) positive entries (one stride-2 level each)"
            )
        if hidden_size % num_heads or hidden_size % 4:
            raise ValueError(
                f"WorldDiT: hidden_size {hidden_size} must be divisible by num_heads "
                f"{num_heads} and by 4"
            )
        self.grid = grid
        self.tokens_per_frame = (grid // patch_size) ** 2
        p, C, D = patch_size, latent_channels, hidden_size

        # embeddings: every frame's pixels and (targets) its memory render, pixel-aligned:
        # frame channels, validity and (memory_provenance) what was observed
        self.memory_channels = C + 1 + bool(memory_provenance)
        self.stem = ConvStem(C + self.memory_channels, widths, D)
        self._stem_cache: StemCache | None = None  # cache_memory_stems
        self.camera_embed = CameraEmbedding(p, D)
        self.role_embed = nn.Embedding(len(ROLES), D)
        self.slot_embed = nn.Embedding(max_frames, D)
        self.register_buffer(
            "pos_embed", sincos_2d(D, grid // p, grid // p), persistent=False
        )  # (n, D)
        self.time_embed = TimestepEmbedding(D)
        self.time_mod = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))  # shared by all blocks
        if text_encoder == "bytes":
            self.text_model = ByteTextEncoder(text_max_tokens, text_width, text_layers)
        elif text_encoder == "minilm":
            self.text_model = HFTextEncoder(minilm_path(), text_max_tokens)
        elif text_encoder == "hf":
            if not text_encoder_path:
                raise ValueError("WorldDiT: text_encoder='hf' needs text_encoder_path")
            self.text_model = HFTextEncoder(text_encoder_path, text_max_tokens)
        else:
            raise ValueError(f"WorldDiT: text_encoder '{text_encoder}' is not bytes, minilm or hf")
        tw = self.text_model.width
        self.text_proj = nn.Sequential(nn.LayerNorm(tw), nn.Linear(tw, D))

        # transformer and output
        self.blocks = nn.ModuleList(DiTBlock(D, num_heads, mlp_ratio) for _ in range(depth))
        self.final = FinalLayer(D, D)
        self.decoder = ConvDecoder(D, widths, C + 1)  # x0 (C channels) and the gate logit

        self.gradient_checkpointing = False
        self.initialize_weights()
        if gradient_checkpointing:
            self.enable_gradient_checkpointing()

    @classmethod
    def from_model_config(cls, cfg: ModelConfig) -> WorldDiT:
        """Build from a ``ModelConfig`` (every field is a constructor argument)."""
        if not isinstance(cfg, ModelConfig):
            raise ValueError(f"from_model_config: want a ModelConfig, got {type(cfg).__name__}")
        return cls(**asdict(cfg))

    def model_config(self) -> ModelConfig:
        """The ``ModelConfig`` this model was built from."""
        return ModelConfig(**{k: self.config[k] for k in ModelConfig.__dataclass_fields__})

    def initialize_weights(self) -> None:
        """All initialisation: xavier linears, small embeddings, adaLN-Zero, zero output."""

        def _basic(m: nn.Module) -> None:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

        self.apply(_basic)
        for emb in (self.role_embed.weight, self.slot_embed.weight, self.text_model.null):
            nn.init.normal_(emb, std=0.02)
        if isinstance(self.text_model, ByteTextEncoder):
            nn.init.normal_(self.text_model.embed.weight, std=0.02)
            nn.init.normal_(self.text_model.pos, std=0.02)
        for lin in (self.time_embed.mlp[0], self.time_embed.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        # adaLN-Zero: every gate, shift and scale starts at zero
        nn.init.zeros_(self.time_mod[1].weight)
        nn.init.zeros_(self.time_mod[1].bias)
        for block in self.blocks:
            nn.init.zeros_(block.mod_table)
            nn.init.zeros_(block.cross_proj.weight)  # cross-attention starts as a no-op
            nn.init.zeros_(block.cross_proj.bias)
        for lin in (self.final.ada[1],):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        for lvl in self.decoder.levels:
            nn.init.zeros_(lvl["cond"].weight)
            nn.init.zeros_(lvl["cond"].bias)
        self.reset_output()

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype. The model is cast whole (it keeps no module in float32 and takes
        no layerwise casting), so it is the stem's; ``ModelMixin.dtype`` walks every module
        for casting hooks on each call, about a millisecond, several times a chunk."""
        return self.stem.inp.weight.dtype

    @property
    def device(self) -> torch.device:
        """The weights' device (the stem's: the model moves whole)."""
        return self.stem.inp.weight.device

    def cache_memory_stems(self, capacity: int | None = 32) -> None:
        """Keep the stem features of up to ``capacity`` memory frames (context and keyframes)
        from one call to the next, for generation on CPU (``StemCache``; None: off). A chunk's
        frames are the next chunks' context, so each is run through the stem once instead of
        every chunk it is remembered in; outputs are unchanged."""
        self._stem_cache = None if capacity is None else StemCache(capacity)

    def reset_output(self) -> None:
        """The output layer as initialised (DiT: zero, so x0 is the prior; the gate open, so
        valid memory passes through). Also how a fine-tune re-learns the output from a
        checkpoint trained with another output parameterisation (``train.init_reset_output``)."""
        nn.init.zeros_(self.decoder.out.weight)
        nn.init.zeros_(self.decoder.out.bias)
        with torch.no_grad():
            self.decoder.out.bias[-1] = _GATE_INIT_LOGIT

    def memory_parameters(self) -> list[nn.Parameter]:
        """Parameters that read the spatial-memory render (for separate lr or freezing): the
        stem's input convolution and the output gate."""
        return list(self.stem.inp.parameters()) + list(self.decoder.out.parameters())

    # ------------------------------------------------------------------ encoding pieces

    def encode_text(self, captions: list[str]) -> TextStates:
        """captions (B strings; "" = no text) -> ``TextStates`` states ``(B, L, hidden)``."""
        t = self.text_model(captions)
        return TextStates(self.text_proj(t.states.to(self.dtype)), t.mask)

    def _embed(
        self,
        frames: ModelFrames,
        role: str,
        reference_c2w: Tensor,
        memory: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Tokens ``(B, N, n, D)``, per-frame conditioning ``(B, N, D)`` and the stem's skip
        features (one ``(B N, w_l, h_l, w_l)`` per level) of one group."""
        cfg = self.config
        B, N, C, h, w = frames.x.shape
        if (C, h, w) != (cfg.latent_channels, self.grid, self.grid):
            raise ValueError(
                f"WorldDiT: {role} frames must be (B, N, {cfg.latent_channels}, {self.grid}, "
                f"{self.grid}), got {tuple(frames.x.shape)}"
            )
        if N > cfg.max_frames:
            raise ValueError(f"WorldDiT: {N} {role} frames exceed max_frames {cfg.max_frames}")
        p = cfg.patch_size
        clean = memory is None  # a memory frame: its stem features depend on its pixels alone
        if clean:
            memory = frames.x.new_zeros(B, N, self.memory_channels, h, w)
        want = (B, N, self.memory_channels, h, w)
        if tuple(memory.shape) != want:
            raise ValueError(f"WorldDiT: memory must be {want}, got {tuple(memory.shape)}")
        pix = torch.cat([frames.x, memory], 2).to(self.dtype).flatten(0, 1)  # (B N, Cin, h, w)
        cache = self._stem_cache
        if clean and cache is not None and not torch.is_grad_enabled() and pix.device.type == "cpu":
            feat, skips = cache(self.stem, pix), []  # memory frames' skips are not used
        else:
            feat, skips = self.stem(pix)  # (B N, D, h / p, w / p)
        tok = rearrange(feat, "(b f) d y x -> b f (y x) d", b=B)  # (B, N, n, D)
        rays = camera_rays(
            frames.c2w.float(), frames.K.float(), reference_c2w.float(), cfg.image_size,
            cfg.latent_downsample, p,
        )  # fmt: skip
        tok = tok + self.camera_embed(rays) + self.pos_embed
        slots = torch.arange(N, device=tok.device)
        if role == "context":
            slots = slots.flip(0)  # the most recent context frame is slot 0
        extra = self.role_embed.weight[ROLES[role]] + self.slot_embed(slots)  # (N, D)
        tok = tok + extra[None, :, None]
        return tok, self.time_embed(frames.sigma), skips

    def _run_blocks(
        self,
        x: Tensor,
        cond: Tensor,
        frame_mask: Tensor,
        text: TextStates,
        cache: KVCache | None = None,
        need_x: bool = True,
    ) -> tuple[Tensor | None, list[Tensor], list[Tensor]]:
        """x ``(B, F, n, D)``, cond ``(B, F, D)``, frame_mask ``(B, F, Fk)`` over all key frames
        (cached then own) -> (x, keys, values) of every block; without ``need_x`` (a KV cache's
        frames) the last block gives only its keys and values, and x is None."""
        B, Fr, n, _ = x.shape
        Fk = frame_mask.shape[2]
        attn_mask = (
            frame_mask[:, :, None, :, None].expand(B, Fr, n, Fk, n).reshape(B, 1, Fr * n, Fk * n)
        )
        mod = self.time_mod(cond).unflatten(-1, (6, -1))  # (B, F, 6, D)
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            if not need_x and i == len(self.blocks) - 1:
                k, v = block.keys_values(x, mod)
                return None, [*keys, k], [*values, v]
            args = (x, mod, attn_mask, text.states, text.mask)
            if cache is not None:
                args = args + (cache.keys[i], cache.values[i])
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x, k, v = self._gradient_checkpointing_func(block, *args)
            else:
                x, k, v = block(*args)
            keys.append(k)
            values.append(v)
        return x, keys, values

    def _text(self, B: int, captions: list[str] | None, text: TextStates | None) -> TextStates:
        if text is None:
            captions = [""] * B if captions is None else list(captions)
            if len(captions) != B:
                raise ValueError(f"WorldDiT: want {B} captions, got {len(captions)}")
            text = self.encode_text(captions)
        if text.states.shape[0] != B:
            raise ValueError(f"WorldDiT: text batch {text.states.shape[0]} != {B}")
        return text

    @staticmethod
    def _check_batch(B: int, **groups: ModelFrames | None) -> None:
        for name, g in groups.items():
            if g is not None and g.x.shape[0] != B:
                raise ValueError(f"WorldDiT: {name} batch {g.x.shape[0]}, targets have {B}")

    def _memory_groups(
        self, context: ModelFrames | None, keyframes: ModelFrames | None, reference_c2w: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Embed context then keyframes: tokens ``(B, Fc, n, D)``, cond ``(B, Fc, D)``, valid
        ``(B, Fc)``."""
        toks, conds, valids = [], [], []
        for frames, role in ((context, "context"), (keyframes, "keyframe")):
            if frames is not None and frames.num > 0:
                t, c, _ = self._embed(frames, role, reference_c2w)
                toks.append(t)
                conds.append(c)
                valids.append(frames.valid)
        B = reference_c2w.shape[0]
        D, n = self.config.hidden_size, self.tokens_per_frame
        if not toks:
            dev = reference_c2w.device
            empty = torch.zeros(B, 0, n, D, device=dev, dtype=self.dtype)
            return empty, empty[:, :, 0], torch.zeros(B, 0, dtype=torch.bool, device=dev)
        return torch.cat(toks, 1), torch.cat(conds, 1), torch.cat(valids, 1)

    def _hole_summary(self, context, keyframes):
        """What the hole fill tends to far from memory (``KVCache.frame_mean``)."""
        if self.config.hole_prior in ("elevation", "elevation_depth"):
            return elevation_profile(self.config.image_size, context, keyframes)
        return frames_mean(context, keyframes)

    # ------------------------------------------------------------------ public API

    def encode_context(
        self,
        context: ModelFrames | None,
        keyframes: ModelFrames | None,
        reference_c2w: Tensor,
        captions: list[str] | None = None,
        text: TextStates | None = None,
    ) -> KVCache:
        """Run the clean memory frames once and keep every block's keys and values.

        context ``(B, Nc, ...)`` and keyframes ``(B, Nk, ...)`` as ``ModelFrames`` (either may
        be None or empty), reference_c2w ``(B, 4, 4)`` (the first target camera), captions (B
        strings) or precomputed ``text`` -> ``KVCache`` with ``Lc = (Nc + Nk) * n`` tokens.
        """
        if reference_c2w.dim() != 3 or reference_c2w.shape[-2:] != (4, 4):
            raise ValueError(f"reference_c2w: want (B, 4, 4), got {tuple(reference_c2w.shape)}")
        B = reference_c2w.shape[0]
        self._check_batch(B, context=context, keyframes=keyframes)
        text = self._text(B, captions, text)
        x, cond, valid = self._memory_groups(context, keyframes, reference_c2w)
        Fc = valid.shape[1]
        eye = torch.eye(Fc, dtype=torch.bool, device=valid.device)
        frame_mask = valid[:, None, :] | eye  # memory frames see valid memory frames and self
        _, keys, values = self._run_blocks(x, cond, frame_mask, text, need_x=False)
        return KVCache(
            keys=keys,
            values=values,
            frame_valid=valid,
            text=text,
            frame_mean=self._hole_summary(context, keyframes),
        )

    def forward(
        self,
        target: ModelFrames,
        context: ModelFrames | None = None,
        keyframes: ModelFrames | None = None,
        memory: Tensor | None = None,
        captions: list[str] | None = None,
        text: TextStates | None = None,
        cache: KVCache | None = None,
        return_dict: bool = True,
        hole_default: Tensor | None = None,
    ) -> WorldModelOutput | tuple[Tensor]:
        """Predict the velocity of every target frame.

        target: noisy target frames ``ModelFrames`` x ``(B, T, C, h, w)``, sigma ``(B, T)``.
        context, keyframes: clean memory frames (``(B, Nc, ...)``, ``(B, Nk, ...)``), or
        ``cache`` from ``encode_context`` (then context, keyframes, captions and text must be
        None). memory ``(B, T, memory_channels, h, w)``: the encoded spatial-memory render at
        each target camera (C + 1, or C + 2 with ``memory_provenance``), or None (all zeros).
        captions: B strings ("" = no text), or ``text``. hole_default ``(B, T, C, h, w)``:
        what the memory render's holes tend to far from its valid pixels, in place of the
        model's own (``hole_prior``); None: the model's.
        Returns ``WorldModelOutput``: sample (the velocity) and x0 ``(B, T, C, h, w)``, gate
        ``(B, T, 1, h, w)``.
        """
        B, T = target.x.shape[:2]
        if T == 0:
            raise ValueError("WorldDiT.forward: need at least one target frame")
        reference = target.c2w[:, 0]
        # 1. memory frames (or their cache) and text
        if cache is not None:
            if any(a is not None for a in (context, keyframes, captions, text)):
                raise ValueError("WorldDiT.forward: pass either cache or context/keyframes/text")
            if cache.frame_valid.shape[0] != B:
                raise ValueError(f"WorldDiT: cache batch {cache.frame_valid.shape[0]} != {B}")
            mem_valid, text, default = cache.frame_valid, cache.text, cache.frame_mean
        else:
            self._check_batch(B, context=context, keyframes=keyframes)
            text = self._text(B, captions, text)
            m_tok, m_cond, mem_valid = self._memory_groups(context, keyframes, reference)
            default = self._hole_summary(context, keyframes)
        Fc = mem_valid.shape[1]
        # 2. target tokens
        t_tok, t_cond, skips = self._embed(target, "target", reference, memory)
        # 3. attention mask over frames: targets see valid memory frames, valid targets, self
        eye = torch.eye(T, dtype=torch.bool, device=mem_valid.device)
        tgt_rows = torch.cat(
            [mem_valid[:, None, :].expand(B, T, Fc), target.valid[:, None, :] | eye], 2
        )  # (B, T, Fc + T)
        # 4. blocks
        if cache is not None:
            x, _, _ = self._run_blocks(t_tok, t_cond, tgt_rows, text, cache)
        else:
            mem_eye = torch.eye(Fc, dtype=torch.bool, device=mem_valid.device)
            mem_rows = torch.cat(
                [mem_valid[:, None, :] | mem_eye, mem_valid.new_zeros(B, Fc, T)], 2
            )  # (B, Fc, Fc + T): memory frames never see targets
            frame_mask = torch.cat([mem_rows, tgt_rows], 1)
            x = torch.cat([m_tok, t_tok], 1)
            cond = torch.cat([m_cond, t_cond], 1)
            x, _, _ = self._run_blocks(x, cond, frame_mask, text)
            x = x[:, Fc:]
        # 5. output: decode to pixels, then pass valid memory through the gate
        g, p, C = self.grid, self.config.patch_size, target.x.shape[2]
        out = self.final(x, t_cond)  # (B, T, n, D)
        out = rearrange(out, "b f (y x) d -> (b f) d y x", y=g // p)
        out = self.decoder(out, skips, t_cond.flatten(0, 1))  # (B T, C + 1, h, w)
        out = out.unflatten(0, (B, T)).to(target.x.dtype)
        drawn, gate_logit = out[:, :, :C], out[:, :, C:]
        if memory is None:
            gate = torch.zeros_like(gate_logit)
            x0 = drawn
        else:
            mem = memory.to(out.dtype)
            if hole_default is not None:
                default = hole_default.to(out.dtype)
            elif isinstance(default, tuple):  # elevation profile -> each target pixel's value
                h = target.x.shape[-1]
                default = elevation_default(
                    default, target.c2w, target.K, self.config.image_size, h
                ).to(out.dtype)
            by_profile = self.config.hole_prior == "elevation_depth" and default is not None
            prior, has = memory_prior(mem, default, C, depth_from_default=by_profile)
            valid = (mem[:, :, C : C + 1] > 0.5).to(out.dtype)
            if self.config.hole_tint != 1:
                drawn = scale_hole_mean(drawn, valid, has, self.config.hole_tint, C - 1)
            gate = torch.sigmoid(gate_logit) * valid
            x0 = prior + (1 - gate) * drawn
        sigma = target.sigma.to(x0.dtype).clamp(min=_MIN_SIGMA)[:, :, None, None, None]
        velocity = (target.x - x0) / sigma
        if not return_dict:
            return (velocity,)
        return WorldModelOutput(sample=velocity, x0=x0, gate=gate)
