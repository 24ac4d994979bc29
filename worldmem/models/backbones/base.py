"""The backbone adapters: a pretrained diffusers video transformer as a ``WorldModel``.

A ``BackboneWorldModel`` wraps a pretrained text-to-video transformer (``self.backbone``) and
gives it the ``WorldModel`` interface (``models/interface.py``) the flow-matching loss, the
sampler and the pipeline call: ``forward(target, context, keyframes, memory, captions | text,
cache)`` returns the flow velocity ``noise - x0`` of every target frame, ``encode_text`` and
``encode_context`` (a ``BackboneContext``) exist.

How the world model's inputs reach the backbone (docs/backbones.md gives the reasons):

* one sequence of frames along the backbone's frame axis,
  ``keyframes (episodic, clean) | context (working memory, clean) | targets (noisy)``, so the
  recent frames sit right before the targets in the backbone's temporal positions and the
  older keyframes before them; frames with ``valid=False`` are never attended (key mask);
* per-frame noise levels: each backbone decides (``_backbone_pass``): Wan modulates every
  token with its own timestep, CogVideoX takes one timestep per sample;
* the codec's latent is ``rgb | depth``: the rgb half enters the backbone's own patch
  embedding; the depth half and the spatial-memory render (targets only; zero for memory
  frames) enter through a zero-initialised linear map of the extra channels added to the
  patch tokens (= zero-initialised extra input channels of the patch embedding);
* cameras: Pluecker rays relative to the first target camera, one bundle per patch, through
  a zero-initialised MLP added to the patch tokens;
* a zero-initialised frame embedding (role one-hot and the frame's own noise level);
* depth out: a zero-initialised linear head on the backbone's last hidden states (the input
  of its output projection); rgb out: the backbone's own prediction, converted to the flow
  velocity (``_to_velocity``).

Every added path starts at zero, so at initialisation the rgb output is exactly the
backbone's prediction for the same latents, timesteps and text states.

Trainable parameters are chosen by explicit methods: ``adapter_parameters()`` (the added
layers), ``lora_parameters()`` (LoRA on the attention projections), ``set_trainable(mode)``
with mode ``adapter``, ``lora`` or ``full``.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import Tensor, nn

from worldmem.models.backbones.lora import (
    TRAINABLE_MODES,
    add_lora,
    lora_parameters,
)
from worldmem.models.backbones.text import T5TextEncoder
from worldmem.models.embeddings import CameraEmbedding, camera_rays, patchify, unpatchify
from worldmem.models.interface import ROLES, ModelFrames, WorldModelOutput
from worldmem.models.text import TextStates

__all__ = ["BackboneWorldModel", "BackboneContext", "resolve_component", "WEIGHT_DTYPES"]

# Sinusoid frequencies of the frame embedding's noise-level feature.
_FRAME_FREQS = 32
# Layers that train (the added ones and LoRA factors) stay float32 when a saved model is
# loaded in a lower precision, as they were while fine-tuning.
ADDED_LAYERS = ["input_embed", "camera_embed", "frame_embed", "depth_head", "lora_A", "lora_B"]
WEIGHT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class BackboneContext:
    """What ``encode_context`` prepares for the denoising steps of one chunk.

    The backbones attend bidirectionally over the whole sequence, so memory frames cannot be
    reduced to cached keys and values: the context is kept as model-space frames and run with
    the targets at every step. context ``(B, Nc, ...)``, keyframes ``(B, Nk, ...)`` (either may
    be None), text: the backbone's text states.
    """

    context: ModelFrames | None
    keyframes: ModelFrames | None
    text: TextStates


@dataclass
class _PassState:
    """Inputs the backbone hooks read during one ``_backbone_pass`` (set and cleared there).

    extra ``(B, F, n, D)`` added to the patch tokens; key_mask: the self-attention key mask
    in the layout the backbone's attention wants (None: attend everywhere); features: the
    output-projection input ``(B, F n, D)`` captured for the depth head.
    """

    extra: Tensor
    key_mask: Tensor | None = None
    features: Tensor | None = None


def resolve_component(path: str | Path, subfolder: str) -> tuple[str, str | None]:
    """Where a pipeline component lives: ``(location, subfolder)`` for ``from_pretrained``.

    path: a local folder holding the component itself (its ``config.json``), a local diffusers
    pipeline folder (``<path>/<subfolder>/config.json``), or a hub id of a pipeline (then
    ``subfolder`` is used; needs network access).
    """
    p = Path(path)
    if (p / "config.json").is_file():
        return str(p), None
    if (p / subfolder / "config.json").is_file():
        return str(p / subfolder), None
    if p.exists():
        raise ValueError(
            f"{p}: neither a diffusers {subfolder} folder (config.json) nor a pipeline folder "
            f"with {subfolder}/config.json"
        )
    return str(path), subfolder  # a hub id


def _frame_features(sigma: Tensor, roles: Tensor) -> Tensor:
    """Per-frame features ``(B, F, 2 * _FRAME_FREQS + len(ROLES))``: sinusoids of the noise
    level ``sigma (B, F)`` and the one-hot role ``roles (F,)``."""
    freqs = torch.exp(
        -math.log(1000.0) * torch.arange(_FRAME_FREQS, device=sigma.device) / _FRAME_FREQS
    )
    ang = sigma.float()[..., None] * 1000.0 * freqs  # (B, F, freqs)
    onehot = F.one_hot(roles, len(ROLES)).float().expand(*sigma.shape, len(ROLES))
    return torch.cat([ang.cos(), ang.sin(), onehot], -1)


class BackboneWorldModel(ModelMixin, ConfigMixin, metaclass=abc.ABCMeta):
    """Base class of the backbone adapters (``WanWorldModel``, ``CogVideoXWorldModel``).

    Subclasses set ``backbone_class`` and implement ``_backbone_geometry``, ``_backbone_pass``,
    ``_to_velocity``, ``_lora_targets`` and ``_text_padding``; the constructor arguments of a
    subclass are its saved config (``backbone_config``: the wrapped transformer's config).
    The extra tokens reach the unmodified backbone through hooks that read ``self._pass`` for
    the duration of one call, so an instance runs one forward at a time.
    """

    _supports_gradient_checkpointing = True
    ignore_for_config = ["backbone"]
    backbone_class: type = nn.Module

    def _setup(
        self,
        backbone_config: dict,
        image_size: int,
        latent_downsample: int,
        latent_channels: int,
        max_frames: int,
        text_encoder_path: str | None,
        text_max_tokens: int,
        lora_rank: int,
        lora_alpha: float | None,
        gradient_checkpointing: bool,
        weight_dtype: str,
        backbone: nn.Module | None,
    ) -> None:
        """Shared constructor body (the subclasses' ``__init__`` registers the config)."""
        if weight_dtype not in WEIGHT_DTYPES:
            raise ValueError(
                f"{type(self).__name__}: weight_dtype '{weight_dtype}' is not one of "
                f"{', '.join(WEIGHT_DTYPES)}"
            )
        if backbone is None:  # private keys ("_use_default_values", ...) would override
            config = {k: v for k, v in backbone_config.items() if not k.startswith("_")}
            backbone = self.backbone_class.from_config(config)
        elif not isinstance(backbone, self.backbone_class):
            raise ValueError(
                f"{type(self).__name__}: backbone must be a {self.backbone_class.__name__}, "
                f"got {type(backbone).__name__}"
            )
        self.backbone = backbone
        p, rgb_c, width, text_dim = self._backbone_geometry()
        if latent_channels != 2 * rgb_c:
            raise ValueError(
                f"{type(self).__name__}: latent_channels must be 2 x the backbone's "
                f"{rgb_c} input channels (rgb latent | depth latent), got {latent_channels}"
            )
        grid = image_size // latent_downsample
        if image_size % latent_downsample or grid % p:
            raise ValueError(
                f"{type(self).__name__}: image_size {image_size} / latent_downsample "
                f"{latent_downsample} must be an integer divisible by the patch size {p}"
            )
        self.patch = p
        self.grid = grid
        self.tokens_per_frame = (grid // p) ** 2
        self.rgb_latent_channels = rgb_c
        self.width = width
        self.text_dim = text_dim

        # the added layers (zero-initialised in initialize_adapter_weights)
        depth_c, memory_c = rgb_c, latent_channels + 1
        self.input_embed = nn.Linear((depth_c + memory_c) * p * p, width)
        self.camera_embed = CameraEmbedding(p, width)
        self.frame_embed = nn.Linear(2 * _FRAME_FREQS + len(ROLES), width)
        self.depth_head = nn.Linear(width, depth_c * p * p)
        self.initialize_adapter_weights()

        self._text_encoder = (
            T5TextEncoder(text_encoder_path, text_max_tokens, self._text_padding())
            if text_encoder_path
            else None
        )
        if lora_rank > 0:
            add_lora(self.backbone, self._lora_targets(), lora_rank, lora_alpha or lora_rank)
        elif lora_rank < 0:
            raise ValueError(f"{type(self).__name__}: lora_rank must be >= 0, got {lora_rank}")
        self._pass: _PassState | None = None
        self._register_hooks()
        if gradient_checkpointing:
            self.enable_gradient_checkpointing()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_backbone(
        cls,
        path: str | Path,
        torch_dtype: torch.dtype | None = None,
        **settings,
    ) -> BackboneWorldModel:
        """Wrap a pretrained backbone: ``path`` is a diffusers transformer folder, a pipeline
        folder holding ``transformer/``, or a hub id (network permitting). ``settings`` are
        the other constructor arguments (image_size, latent_downsample, latent_channels, ...);
        ``torch_dtype`` the dtype the backbone's weights are loaded in (default float32)."""
        torch_dtype = torch_dtype or torch.float32
        names = {v: k for k, v in WEIGHT_DTYPES.items()}
        if torch_dtype not in names:
            raise ValueError(f"from_backbone: torch_dtype must be one of {list(names)}")
        where, sub = resolve_component(path, "transformer")
        backbone = cls.backbone_class.from_pretrained(where, subfolder=sub, torch_dtype=torch_dtype)
        extra = cls._pretrained_settings(path)
        config = {k: v for k, v in backbone.config.items() if not k.startswith("_")}
        return cls(
            backbone_config=config,
            backbone=backbone,
            weight_dtype=names[torch_dtype],
            **extra,
            **settings,
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> BackboneWorldModel:
        """Load a folder written by ``save_pretrained``; by default the backbone comes back
        in the precision it was fine-tuned in (``weight_dtype``), the added layers in
        float32."""
        if kwargs.get("torch_dtype") is None:
            cfg = cls.load_config(pretrained_model_name_or_path, subfolder=kwargs.get("subfolder"))
            kwargs["torch_dtype"] = WEIGHT_DTYPES[cfg.get("weight_dtype", "float32")]
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _pretrained_settings(cls, path: str | Path) -> dict:
        """Constructor arguments read from the pretrained folder besides the transformer."""
        return {}

    def initialize_adapter_weights(self) -> None:
        """Every added layer starts as an exact no-op: zero output at initialisation."""
        for lin in (self.input_embed, self.frame_embed, self.depth_head):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        first, last = self.camera_embed.mlp[0], self.camera_embed.mlp[2]
        nn.init.xavier_uniform_(first.weight)
        nn.init.zeros_(first.bias)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    # ------------------------------------------------------------------ trainable parameters

    def adapter_parameters(self) -> list[nn.Parameter]:
        """The added layers: memory/depth input, camera and frame embeddings, depth head."""
        mods = (self.input_embed, self.camera_embed, self.frame_embed, self.depth_head)
        return [p for m in mods for p in m.parameters()]

    def memory_parameters(self) -> list[nn.Parameter]:
        """Parameters that read the spatial-memory render (and the depth latent)."""
        return list(self.input_embed.parameters())

    def lora_parameters(self) -> list[nn.Parameter]:
        """LoRA factors on the backbone's attention projections (empty without LoRA)."""
        return lora_parameters(self.backbone)

    def trainable_parameters(self, mode: str) -> list[nn.Parameter]:
        """The parameters ``mode`` trains: ``adapter`` (added layers), ``lora`` (added layers
        and LoRA factors), ``full`` (everything)."""
        if mode not in TRAINABLE_MODES:
            raise ValueError(f"trainable mode '{mode}' is not one of {', '.join(TRAINABLE_MODES)}")
        if mode == "full":
            return list(self.parameters())
        params = self.adapter_parameters()
        if mode == "lora":
            lora = self.lora_parameters()
            if not lora:
                raise ValueError(
                    f"{type(self).__name__}: trainable mode 'lora' needs LoRA layers; "
                    "build the model with lora_rank > 0"
                )
            params = params + lora
        return params

    def set_trainable(self, mode: str, upcast: bool = True) -> list[nn.Parameter]:
        """Freeze everything but ``trainable_parameters(mode)``; with ``upcast`` the trainable
        parameters are kept in float32 (master weights; compute follows autocast). Returns
        the trainable parameters."""
        params = self.trainable_parameters(mode)
        self.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
            if upcast and p.is_floating_point() and p.dtype != torch.float32:
                p.data = p.data.float()
        return params

    # ------------------------------------------------------------------ text

    def encode_text(self, captions: list[str]) -> TextStates:
        """captions (B strings; "" = no text) -> the backbone's text states
        ``(B, L, text_dim)``. Without a text encoder every caption must be "" and maps to zero
        states (what the backbones see for padding)."""
        if not isinstance(captions, list | tuple) or not all(isinstance(c, str) for c in captions):
            raise ValueError(
                f"encode_text: captions must be a list of str, got {type(captions).__name__}"
            )
        device = self.input_embed.weight.device
        if self._text_encoder is not None:
            return self._text_encoder(list(captions), device)
        if any(captions):
            raise ValueError(
                f"{type(self).__name__}: captions need a text encoder; set text_encoder_path "
                "(model.text_encoder=hf, model.text_encoder_path=<folder>) or pass text states"
            )
        L = self.config.text_max_tokens
        states = torch.zeros(len(captions), L, self.text_dim, device=device)
        return TextStates(states, torch.zeros(len(captions), L, dtype=torch.bool, device=device))

    def _text(self, B: int, captions: list[str] | None, text: TextStates | None) -> TextStates:
        if text is None:
            captions = [""] * B if captions is None else list(captions)
            if len(captions) != B:
                raise ValueError(f"{type(self).__name__}: want {B} captions, got {len(captions)}")
            text = self.encode_text(captions)
        if text.states.shape[0] != B or text.states.shape[2] != self.text_dim:
            raise ValueError(
                f"{type(self).__name__}: text states must be ({B}, L, {self.text_dim}), "
                f"got {tuple(text.states.shape)}"
            )
        return text

    # ------------------------------------------------------------------ public API

    def encode_context(
        self,
        context: ModelFrames | None,
        keyframes: ModelFrames | None,
        reference_c2w: Tensor,
        captions: list[str] | None = None,
        text: TextStates | None = None,
    ) -> BackboneContext:
        """Prepare the memory frames and text once per chunk (see ``BackboneContext``).

        context ``(B, Nc, ...)``, keyframes ``(B, Nk, ...)`` (either may be None or empty),
        reference_c2w ``(B, 4, 4)`` (the first target camera), captions (B strings) or text.
        """
        if reference_c2w.dim() != 3 or reference_c2w.shape[-2:] != (4, 4):
            raise ValueError(f"reference_c2w: want (B, 4, 4), got {tuple(reference_c2w.shape)}")
        B = reference_c2w.shape[0]
        for name, g in (("context", context), ("keyframes", keyframes)):
            if g is not None and g.x.shape[0] != B:
                raise ValueError(f"{type(self).__name__}: {name} batch {g.x.shape[0]} != {B}")
        return BackboneContext(context, keyframes, self._text(B, captions, text))

    def forward(
        self,
        target: ModelFrames,
        context: ModelFrames | None = None,
        keyframes: ModelFrames | None = None,
        memory: Tensor | None = None,
        captions: list[str] | None = None,
        text: TextStates | None = None,
        cache: BackboneContext | None = None,
        return_dict: bool = True,
    ) -> WorldModelOutput | tuple[Tensor]:
        """Predict the flow velocity ``noise - x0`` of every target frame (``WorldModel``).

        target: noisy ``ModelFrames`` x ``(B, T, C, h, w)`` (C = rgb latent | depth latent),
        sigma ``(B, T)``. context, keyframes: clean memory frames, or ``cache`` from
        ``encode_context``. memory ``(B, T, C + 1, h, w)``: the encoded spatial-memory render at
        each target camera, or None (zeros). captions (B strings) or precomputed ``text``.
        Returns ``WorldModelOutput(sample (B, T, C, h, w))``.
        """
        B, T = target.x.shape[:2]
        if T == 0:
            raise ValueError(f"{type(self).__name__}.forward: need at least one target frame")
        if cache is not None:
            if any(a is not None for a in (context, keyframes, captions, text)):
                raise ValueError(
                    f"{type(self).__name__}.forward: pass either cache or context/keyframes/text"
                )
            context, keyframes, text = cache.context, cache.keyframes, cache.text
        text = self._text(B, captions, text)
        rgb, depth = self._run(target, context, keyframes, memory, text)
        sample = torch.cat([rgb, depth], 2).to(target.x.dtype)
        if not return_dict:
            return (sample,)
        return WorldModelOutput(sample=sample)

    def predict_native(
        self,
        target: ModelFrames,
        context: ModelFrames | None = None,
        keyframes: ModelFrames | None = None,
        memory: Tensor | None = None,
        text: TextStates | None = None,
    ) -> dict[str, Tensor]:
        """The backbone's own prediction before conversion to the flow velocity.

        Returns dict(prediction ``(B, T, C/2, h, w)`` in the backbone's parameterisation,
        latents ``(B, F, C/2, h, w)`` and timesteps ``(B,)`` or ``(B, F n)``: exactly what the
        backbone was given for the whole frame sequence keyframes | context | targets).
        """
        B = target.x.shape[0]
        text = self._text(B, None, text)
        seq = self._sequence(target, context, keyframes, memory)
        latents, timesteps = self._native_inputs(seq)
        pred, _ = self._backbone_call(seq, latents, timesteps, text)
        return {"prediction": pred[:, -target.num :], "latents": latents, "timesteps": timesteps}

    # ------------------------------------------------------------------ the forward pass

    def _check_frames(self, frames: ModelFrames, role: str) -> None:
        want = (self.config.latent_channels, self.grid, self.grid)
        if tuple(frames.x.shape[2:]) != want:
            raise ValueError(
                f"{type(self).__name__}: {role} frames must be (B, N, {want[0]}, {want[1]}, "
                f"{want[2]}), got {tuple(frames.x.shape)}"
            )

    def _sequence(
        self,
        target: ModelFrames,
        context: ModelFrames | None,
        keyframes: ModelFrames | None,
        memory: Tensor | None,
    ) -> dict:
        """Concatenate keyframes | context | targets along the frame axis (F frames)."""
        B, T = target.x.shape[:2]
        self._check_frames(target, "target")
        groups = []
        for frames, role in ((keyframes, "keyframe"), (context, "context")):
            if frames is not None and frames.num > 0:
                if frames.x.shape[0] != B:
                    raise ValueError(
                        f"{type(self).__name__}: {role} batch {frames.x.shape[0]}, targets have {B}"
                    )
                self._check_frames(frames, role)
                groups.append((frames, role))
        groups.append((target, "target"))
        Fr = sum(g.num for g, _ in groups)
        if Fr > self.config.max_frames:
            raise ValueError(
                f"{type(self).__name__}: {Fr} frames (keyframes + context + targets) exceed "
                f"max_frames {self.config.max_frames}"
            )
        C1 = self.config.latent_channels + 1
        if memory is None:
            memory = target.x.new_zeros(B, T, C1, self.grid, self.grid)
        elif tuple(memory.shape) != (B, T, C1, self.grid, self.grid):
            raise ValueError(
                f"{type(self).__name__}: memory must be {(B, T, C1, self.grid, self.grid)}, "
                f"got {tuple(memory.shape)}"
            )
        keys = ("x", "sigma", "c2w", "K", "valid")
        cat = {k: torch.cat([getattr(g, k) for g, _ in groups], 1) for k in keys}  # (B, F, ...)
        roles = torch.cat([torch.full((g.num,), ROLES[r], dtype=torch.long) for g, r in groups]).to(
            target.x.device
        )
        mem = torch.cat([memory.new_zeros(B, Fr - T, C1, self.grid, self.grid), memory], 1)
        return dict(**cat, roles=roles, memory=mem, reference=target.c2w[:, 0], T=T)

    def _extra_tokens(self, seq: dict) -> Tensor:
        """The added inputs of every frame ``(B, F, n, D)``: depth latent and memory render,
        camera rays, frame embedding (all zero at initialisation)."""
        c, p = self.rgb_latent_channels, self.patch
        w = self.input_embed.weight
        chans = torch.cat([seq["x"][:, :, c:], seq["memory"]], 2).to(w.dtype)
        tok = self.input_embed(patchify(chans, p))
        rays = camera_rays(
            seq["c2w"].float(), seq["K"].float(), seq["reference"].float(),
            self.config.image_size, self.config.latent_downsample, p,
        )  # fmt: skip
        tok = tok + self.camera_embed(rays)
        frame = self.frame_embed(_frame_features(seq["sigma"], seq["roles"]).to(w.dtype))
        return tok + frame[:, :, None]

    def _backbone_call(
        self, seq: dict, latents: Tensor, timesteps: Tensor, text: TextStates
    ) -> tuple[Tensor, Tensor]:
        """Run the backbone with the extra tokens and key mask: (prediction ``(B, F, c, h,
        w)`` native, last hidden states ``(B, F, n, D)``)."""
        valid = seq["valid"]
        key_valid = None
        if not bool(valid.all()):
            key_valid = valid | ~valid.any(1, keepdim=True)  # a sample with no valid frame sees all
        self._pass = _PassState(extra=self._extra_tokens(seq))
        try:
            pred = self._backbone_pass(latents, timesteps, text.states, key_valid)
            features = self._pass.features
        finally:
            self._pass = None
        n = self.tokens_per_frame
        return pred, rearrange(features, "b (f n) d -> b f n d", n=n)

    def _run(
        self,
        target: ModelFrames,
        context: ModelFrames | None,
        keyframes: ModelFrames | None,
        memory: Tensor | None,
        text: TextStates,
    ) -> tuple[Tensor, Tensor]:
        """(rgb velocity, depth velocity) of the targets, each ``(B, T, C/2, h, w)``."""
        seq = self._sequence(target, context, keyframes, memory)
        latents, timesteps = self._native_inputs(seq)
        pred, features = self._backbone_call(seq, latents, timesteps, text)
        T = seq["T"]
        rgb = self._to_velocity(pred[:, -T:].float(), latents[:, -T:].float(), target.sigma)
        feats = features[:, -T:].to(self.depth_head.weight.dtype)
        depth = unpatchify(self.depth_head(feats), self.patch, self.grid, self.grid)
        return rgb, depth.float()

    # ------------------------------------------------------------------ per backbone

    @abc.abstractmethod
    def _backbone_geometry(self) -> tuple[int, int, int, int]:
        """(spatial patch size, rgb latent channels, hidden width, text width)."""
        ...

    @abc.abstractmethod
    def _text_padding(self) -> str:
        """How the backbone's pipeline pads T5 states: "zeros" or "tokens"."""
        ...

    @abc.abstractmethod
    def _lora_targets(self) -> list[str]:
        """Full names of the attention projections that get LoRA factors."""
        ...

    @abc.abstractmethod
    def _register_hooks(self) -> None:
        """Hooks that add ``self._pass.extra`` to the patch tokens and capture the output
        projection's input into ``self._pass.features``."""
        ...

    @abc.abstractmethod
    def _native_inputs(self, seq: dict) -> tuple[Tensor, Tensor]:
        """The backbone's input latents ``(B, F, c, h, w)`` (rgb half, in its own scaling)
        and timesteps ``(B,)`` or ``(B, F n)`` for the sequence."""
        ...

    @abc.abstractmethod
    def _backbone_pass(
        self, latents: Tensor, timesteps: Tensor, text_states: Tensor, key_valid: Tensor | None
    ) -> Tensor:
        """One call of the backbone -> its prediction ``(B, F, c, h, w)``; key_valid ``(B, F)``
        bool (None: every frame may be attended)."""
        ...

    @abc.abstractmethod
    def _to_velocity(self, pred: Tensor, latents: Tensor, sigma: Tensor) -> Tensor:
        """The backbone's prediction for the targets -> flow velocity ``noise - x0``."""
        ...
