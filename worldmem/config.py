"""Config schemas: one dataclass per configurable object.

YAML presets in ``configs/`` and ``key=value`` command-line overrides are merged onto these
schemas with ``OmegaConf.structured``, so a misspelt key is an error that names the key and
the valid ones, never a silent default. Each object takes its own small config; the root
configs (``TrainRootConfig``, ``SampleRootConfig``) only group them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from worldmem.config_yaml import ConfigError, merge, override, to_object, yaml_with_includes

__all__ = [
    "ModelConfig",
    "BackboneConfig",
    "MemoryConfig",
    "DataConfig",
    "TrainConfig",
    "SampleConfig",
    "ServerConfig",
    "ActionConfig",
    "TrainRootConfig",
    "SampleRootConfig",
    "ConfigError",
    "MEMORY_MODES",
    "MAX_SAMPLE_SEED",
    "load_config",
    "to_dict",
    "from_dict",
]


MAX_SAMPLE_STEPS = 1000  # denoising steps per chunk (more is a typo, and hours per chunk)
MAX_FPS = 1000  # frames per second of a written video
DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")  # torch device names a config may give


def _int_range(obj: Any, name: str, lo: int, hi: int) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(
            f"{type(obj).__name__}.{name}: expected an integer in [{lo}, {hi}], got {value!r}"
        )


# The ranges ``_numbers`` knows: (test, what the error says)
_RANGES = {
    ">0": (lambda v: v > 0, "> 0"),
    ">=0": (lambda v: v >= 0, ">= 0"),
    "[0,1]": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "[0,90)": (lambda v: 0 <= v < 90, "in [0, 90)"),
}
_INT64 = (-(2**63), 2**63 - 1)  # torch and numpy take integers of at most 64 bits


def _numbers(obj: Any, **ranges: str) -> None:
    """Every number of the config dataclass ``obj`` (in lists too) is finite, an integer fits
    in 64 bits, and the fields named in ``ranges`` lie in theirs (a key of ``_RANGES``); else
    a ``ConfigError`` naming the field. A NaN, an infinity or a negative size in a config is a
    typo that would otherwise surface deep in training or generation."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        test, what = _RANGES[ranges[f.name]] if f.name in ranges else (lambda v: True, "")
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            fits = _INT64[0] <= v <= _INT64[1] if isinstance(v, int) else math.isfinite(v)
            if not (fits and test(v)):
                kind = "an integer" if isinstance(v, int) else "a finite number"
                raise ConfigError(
                    f"{type(obj).__name__}.{f.name}: expected {kind} {what}".rstrip()
                    + f", got {value!r}"
                )


def _choice(obj: Any, name: str, options: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    if value not in options:
        raise ConfigError(
            f"{type(obj).__name__}.{name}: '{value}' is not one of {', '.join(options)}"
        )


@dataclass
class ActionConfig:
    """Keyboard-to-camera motion speeds."""

    move_m: float = 0.15  # metres per frame for W/S, A/D, Q/E
    turn_deg: float = 6.0  # degrees per frame for the arrow keys (yaw and pitch)
    max_pitch_deg: float = 80.0  # pitch is clamped to +-this, so the camera never flips

    def __post_init__(self):
        _numbers(self, move_m=">=0", turn_deg=">=0", max_pitch_deg="[0,90)")


HOLE_PRIORS = ("mean", "elevation", "elevation_depth")  # ModelConfig.hole_prior


@dataclass
class ModelConfig:
    """The video diffusion transformer (constructor arguments of ``WorldDiT``)."""

    image_size: int = 64  # frame height and width in pixels (square frames)
    patch_size: int = 8  # pixels per patch side in model space (after the codec)
    hidden_size: int = 256  # transformer width
    depth: int = 6  # transformer blocks
    num_heads: int = 4  # attention heads
    mlp_ratio: float = 4.0  # MLP hidden width / transformer width
    chunk_frames: int = 2  # target frames generated per chunk
    max_frames: int = 16  # longest frame sequence (context + keyframes + targets)
    codec: str = "identity"  # pixel space or a diffusers VAE latent
    codec_path: str | None = None  # local folder of the diffusers VAE (codec=vae)
    latent_channels: int = 4  # channels per frame in model space (identity: rgb + depth = 4)
    latent_downsample: int = 1  # spatial downsampling of the codec (identity: 1; VAE: 8)
    text_encoder: str = "minilm"  # frozen all-MiniLM-L6-v2 (offline), trainable bytes, or hf
    text_encoder_path: str | None = None  # local folder of a transformers text encoder (hf)
    text_max_tokens: int = 64  # text tokens (bytes for the byte encoder)
    text_width: int = 256  # width of the byte-level text encoder
    text_layers: int = 2  # layers of the byte-level text encoder
    depth_near_m: float = 0.25  # depth is encoded as near / depth (inverse depth) in [0, 1]
    gradient_checkpointing: bool = False  # recompute block activations in backward
    # channels of the convolutional stem/decoder levels, finest first (log2(patch_size) levels)
    conv_widths: list[int] = field(default_factory=lambda: [32, 64, 128])
    # the memory render carries one more channel: 1 where its point was observed (a true
    # frame), 0 where the model generated it, so the model can trust the two differently
    memory_provenance: bool = False
    # what the hole fill of the memory render tends to far from memory: the memory frames'
    # mean ("mean"), or their mean along each direction's elevation above the horizon
    # ("elevation": ceiling above, floor below, walls between), read at each target pixel;
    # "elevation_depth": the same, but the holes' depth is the profile's alone, not continued
    # from the depth beside them (which carries a far surface across one turning into view)
    hole_prior: str = "mean"
    # how much of the mean colour the model adds in the render's holes is kept: 1 draws freely;
    # below 1 that mean (per frame and colour channel) is scaled by it, so a tint the model
    # leans to builds up more slowly chunk after chunk; 0 keeps the prior's mean colour
    hole_tint: float = 1.0

    def __post_init__(self):
        _choice(self, "codec", ("identity", "vae"))
        _choice(self, "hole_prior", HOLE_PRIORS)
        _numbers(self, hole_tint="[0,1]")
        if self.hole_tint != 1 and self.codec != "identity":
            raise ConfigError("model.hole_tint below 1 needs codec identity (colour channels)")
        if self.hole_prior == "elevation_depth" and self.codec != "identity":
            raise ConfigError(
                "model.hole_prior: elevation_depth needs codec identity (a depth channel)"
            )
        _choice(self, "text_encoder", ("bytes", "minilm", "hf"))
        positive = ("image_size", "patch_size", "hidden_size", "depth", "num_heads", "mlp_ratio",
                    "chunk_frames", "max_frames", "latent_channels", "latent_downsample",
                    "text_max_tokens", "text_width", "depth_near_m", "conv_widths")  # fmt: skip
        _numbers(self, text_layers=">=0", **dict.fromkeys(positive, ">0"))


@dataclass
class BackboneConfig:
    """A pretrained diffusers video transformer fine-tuned as the world model (docs/backbones.md).

    With a backbone, ``ModelConfig`` gives the frame size, chunking, VAE (codec_path) and text
    encoder (text_encoder_path); the transformer's architecture comes from ``path``.
    """

    kind: str = "none"  # none: train WorldDiT from ModelConfig; wan | cogvideox: a backbone
    path: str | None = None  # diffusers pipeline folder (with transformer/) or transformer folder
    trainable: str = "lora"  # adapter (added layers) | lora (+ LoRA factors) | full
    lora_rank: int = 64  # LoRA rank on every attention q, k, v and output projection
    lora_alpha: float = 64.0  # LoRA scale = lora_alpha / lora_rank
    weight_dtype: str = "bfloat16"  # frozen backbone weights; trainable ones are kept float32

    def __post_init__(self):
        _choice(self, "kind", ("none", "wan", "cogvideox"))
        _choice(self, "trainable", ("adapter", "lora", "full"))
        _choice(self, "weight_dtype", ("bfloat16", "float16", "float32"))
        _numbers(self, lora_rank=">0", lora_alpha=">=0")


@dataclass
class MemoryConfig:
    """Spatial, episodic and working memory. Every threshold carries its unit in its name."""

    # spatial memory (surface samples: each keeps the colour and position one view saw)
    voxel_size_m: float = 0.04  # cell of the spatial index (voxel_keys, 8^3-cell culling blocks)
    max_points: int = 300_000  # hard cap; evict generated, then least recently seen, then coarse
    # cap on the generated samples alone (0: none but max_points): the model redraws a guess
    # from its render, and nearly every pixel it draws is stored anew, so a guess budget sets
    # how many recent frames of guesses are kept, whatever the observed samples hold
    max_generated_points: int = 0
    carve_margin_rel: float = 0.15  # depth gap (relative) below which views agree: no carving, and
    # a generated sample this near an observed one does not hide it
    carve_factor: float = 0.5  # confidence multiplier for a point seen through
    min_confidence: float = 0.3  # points below this confidence are dropped
    # pixels farther than this are not inserted: beyond every surface of the synthetic worlds
    # (a plaza's far facades reach 45 m), short of an estimator's sky
    max_depth_m: float = 100.0
    splat_footprint_scale: float = 0.75  # splat radius = this * the sample's projected footprint
    max_splat_radius_px: int = 4  # clamp on the footprint radius
    min_splat_radius_px: float = 0.75  # footprint floor (0.5: only the pixel a point falls in)
    surface_tol_rel: float = 0.03  # samples this close (relative depth) are one surface
    dedup_radius_px: float = 0.3  # a new pixel this near a stored sample of its surface: a repeat
    dedup_colour_tol: float = 0.03  # ... when their colours also agree to this (per channel)
    replace_quality_ratio: float = 0.7  # a repeat replaces a sample when quality < this * its
    render_backend: str = "torch"  # gsplat needs CUDA
    # torch backend: "bilinear" resamples the winning surface's samples; "resample" also gives
    # pixels whose winner is observed the colour of the kept observed frames, read bicubically
    # (memory/observed_frames.py); "nearest" the winner's colour
    render_colour: str = "bilinear"
    # with "resample": a pixel no observed sample covers is given the observed surface a kept
    # frame saw there, found from the observed pixels within this many pixels (0: not)
    fill_observed_px: int = 0
    max_confidence: float = 10.0  # cap on confidence (+1 per frame that sees the sample again)
    # observed depth maps kept to refuse generated samples in them (and, with
    # render_colour="resample", observed frames kept to resample from)
    free_space_views: int = 16
    # the model is not given generated pixels more than carve_margin_rel beyond the farthest
    # observed pixel of a view where observed pixels are at least this share (render.py,
    # MemoryRender.without_far_guesses); 0 gives them all
    far_guess_min_observed: float = 0.0
    # which generated pixels such a view hides: "far" (those above), "all" (every one: where
    # a view sees what was observed, the model draws the rest again beside it)
    hide_guesses: str = "far"
    # what the model is given of its own earlier guesses (memory/guesses.py): each render moves
    # generated pixels this fraction towards what the observed frames show along elevation
    # (less within about guess_relax_near_px of an observed pixel); 0 leaves them as stored
    guess_relax: float = 0.0
    guess_relax_near_px: float = 8.0
    # > 0: a guess on a ray inside an observed frame's field of view is not relaxed, and the
    # rate reaches guess_relax this many degrees outside every one (0: the same everywhere)
    guess_relax_outside_deg: float = 0.0
    # what the render's holes tend to: "box", the room the observed frames imply, completed as
    # a box (memory/layout.py), which guesses also relax towards; "none", the model's own
    # default (model.hole_prior)
    layout: str = "none"
    # episodic memory (keyframes)
    keyframe_capacity: int = 32  # keyframes kept at most
    keyframe_novelty_overlap: float = 0.6  # add a frame when its overlap with every kf is below
    retrieve_k: int = 2  # keyframes given to the model per chunk
    retrieve_min_overlap: float = 0.1  # keyframes seeing less of the targets are not retrieved
    # slots nothing overlapping fills go to the oldest keyframes (the start frame first)
    retrieve_anchor: bool = False
    overlap_samples: int = 256  # frustum samples per camera for overlap scores
    overlap_depth_tolerance_rel: float = 0.1  # a sample farther than depth * (1 + this) is hidden
    near_m: float = 0.1  # frustum near plane for sampling
    far_m: float = 12.0  # frustum far plane for sampling (no depth available)
    # working memory
    working_frames: int = 2  # most recent frames given to the model as context
    seed: int = 0  # seed for frustum sampling in retrieval

    def __post_init__(self):
        _choice(self, "render_backend", ("torch", "gsplat"))
        _choice(self, "render_colour", ("bilinear", "resample", "nearest"))
        _choice(self, "hide_guesses", ("far", "all"))
        _choice(self, "layout", ("none", "box"))
        positive = (
            "voxel_size_m",
            "max_points",
            "max_depth_m",
            "max_splat_radius_px",
            "max_confidence",
            "keyframe_capacity",
            "overlap_samples",
            "near_m",
            "far_m",
        )
        fractions = ("carve_factor", "keyframe_novelty_overlap", "retrieve_min_overlap",
                     "far_guess_min_observed", "guess_relax")  # fmt: skip
        rest = ("carve_margin_rel", "min_confidence", "splat_footprint_scale",
                "min_splat_radius_px", "surface_tol_rel", "dedup_radius_px", "dedup_colour_tol",
                "replace_quality_ratio", "free_space_views", "retrieve_k",
                "overlap_depth_tolerance_rel", "working_frames", "seed",
                "guess_relax_near_px", "guess_relax_outside_deg",
                "max_generated_points", "fill_observed_px")  # fmt: skip
        _numbers(
            self,
            **dict.fromkeys(positive, ">0"),
            **dict.fromkeys(fractions, "[0,1]"),
            **dict.fromkeys(rest, ">=0"),
        )
        if self.far_m <= self.near_m:
            raise ConfigError(
                f"MemoryConfig.far_m={self.far_m} must be beyond near_m={self.near_m}"
            )
        if self.layout != "none" and self.free_space_views == 0:
            raise ConfigError(
                f"MemoryConfig.layout='{self.layout}': the room is fitted to the observed frames "
                "the spatial memory keeps, and free_space_views=0 keeps none"
            )

    @property
    def kept_observed_frames(self) -> int:
        """How many of its latest observed frames the spatial memory keeps: ``free_space_views``
        when something reads them (``render_colour`` "resample", ``guess_relax``, the room of
        ``layout``), else 0."""
        wanted = self.render_colour == "resample" or self.guess_relax > 0 or self.layout != "none"
        return self.free_space_views if wanted else 0


@dataclass
class DataConfig:
    """Episodes on disk and how training samples are cut from them."""

    root: str = "data/synthetic"  # folder with manifest.jsonl and episode folders
    image_size: int = 64  # frames are resized to this (square)
    chunk_frames: int = 2  # target frames per sample
    context_frames: int = 2  # working-memory frames before the target
    keyframes: int = 2  # retrieved episodic keyframes per sample
    revisit_ratio: float = 0.5  # fraction of samples drawn from mined revisits
    min_revisit_gap_frames: int = 12  # a revisit looks at a view at least this many frames back
    revisit_min_overlap: float = 0.5  # frustum overlap with the earlier view to count as revisit
    memory_stride_frames: int = 2  # every n-th earlier frame goes into the spatial memory
    memory_max_frames: int = 48  # at most this many earlier frames build the spatial memory
    # Fraction of samples whose history (every earlier frame but the first) looks like the
    # model's own output, as it does when generating: blurred, with its contrast shrunk, and
    # fused into the spatial memory as generated frames (the first frame stays observed).
    p_generated_history: float = 0.0
    # The model's own rollouts of the training episodes (datasets/rollouts.py; folders named as
    # under root) and the fraction of samples whose history they replace, fused as generated
    # (frame 0 stays the true, observed one; episodes without a rollout keep their truth).
    rollout_root: str | None = None
    p_rollout_history: float = 0.0
    skip_bad: bool = False  # log and skip broken episodes instead of failing
    batch_size: int = 8
    num_workers: int = 2
    val_fraction: float = 0.05  # used only when the manifest has no val split
    seed: int = 0

    def __post_init__(self):
        positive = ("image_size", "chunk_frames", "memory_stride_frames", "batch_size")
        fractions = ("revisit_ratio", "revisit_min_overlap", "val_fraction",
                     "p_generated_history", "p_rollout_history")  # fmt: skip
        rest = ("context_frames", "keyframes", "min_revisit_gap_frames", "memory_max_frames",
                "num_workers", "seed")  # fmt: skip
        _numbers(
            self,
            **dict.fromkeys(positive, ">0"),
            **dict.fromkeys(fractions, "[0,1]"),
            **dict.fromkeys(rest, ">=0"),
        )
        if self.p_rollout_history > 0 and not self.rollout_root:
            raise ValueError("DataConfig.p_rollout_history > 0 needs rollout_root (a folder "
                             "written by datasets/rollouts.py)")  # fmt: skip


DEPTH_LOSSES = ("l2", "l1")


@dataclass
class TrainConfig:
    """Optimisation, logging and distribution."""

    out_dir: str = "runs/tiny"
    max_steps: int = 3000
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1  # cosine decays to lr * this
    grad_clip: float = 1.0
    adam_beta1: float = 0.9  # AdamW's decay of its running mean of the gradient
    adam_beta2: float = 0.99  # and of its running mean of the squared gradient
    ema_decay: float = 0.999
    # the EMA decay is at most (1 + step) / (this + step), so the average of a short run leaves
    # the random init instead of sticking to it (1: no warm-up)
    ema_warmup_offset: int = 10
    p_drop_working: float = 0.1  # memory dropout probabilities (per sample)
    p_drop_episodic: float = 0.2
    p_drop_spatial: float = 0.2
    p_drop_text: float = 0.1
    p_cold_start: float = 0.1  # no context, keyframes or spatial memory: a prompt-only start
    # the memory render emptied on one side over 30-90% of the view: a camera turned away
    p_drop_spatial_part: float = 0.0
    # a world begun from an image without depth: the context's depth unknown, no keyframes or
    # spatial memory (the depth-less start generates the image's depth from this)
    p_depthless_start: float = 0.0
    p_independent: float = 0.25  # per-frame (diffusion-forcing) target sigmas, else shared
    context_noise_max: float = 0.2  # memory frames noised to a level in [0, this) (anti-drift)
    timestep_logit_mean: float = 0.0  # logit-normal timestep sampling
    timestep_logit_std: float = 1.0
    depth_loss_weight: float = 0.5
    # "l2" or "l1" on inverse depth. Where the model cannot know the depth, an L2 estimate is
    # the mean inverse depth (nearer than the typical depth), an L1 estimate its median
    depth_loss: str = "l2"
    hole_loss_weight: float = 0.0  # extra loss weight where the memory render is empty
    # the adversarial term (training/adversarial.py): its gradient at the model's output as a
    # fraction of the reconstruction loss's (0: no discriminator, plain flow matching)
    adv_weight: float = 0.0
    # the discriminator trains alone for this many steps before the model gets its term: a
    # discriminator that cannot yet tell the frames apart gives a gradient that is noise
    adv_start_step: int = 0
    # the feature term (training/perceptual.py): a distance between frozen EfficientNet-Lite0
    # activations of the model's clean estimate and the truth, added with this weight
    perceptual_weight: float = 0.0
    # the texture term (training/perceptual.py, FeatureLoss.style): the same network's channel
    # statistics over the render's holes, compared with the truth's wherever things are;
    # added with this weight times each frame's share of holes
    style_weight: float = 0.0
    precision: str = "32-true"  # "bf16-mixed" on GPUs
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | fsdp
    fsdp_wrap_modules: list[str] = field(default_factory=list)  # FSDP unit class names (fsdp)
    log_every_steps: int = 10
    sample_every_steps: int = 500  # writes a sample video to the logs
    ckpt_every_steps: int = 250
    val_every_steps: int = 500
    val_batches: int = 4  # batches per validation (Lightning's limit_val_batches)
    resume: str | None = None  # a Lightning checkpoint to resume from ("last" finds it)
    # a pipeline folder (e.g. checkpoints/worldmem-tiny) whose weights start the model and its
    # EMA: continues a shipped model without its optimizer state (a fresh schedule)
    init_from: str | None = None
    init_reset_output: bool = False  # with init_from: the output layer starts as initialised
    seed: int = 0
    threads: int = 0  # torch CPU threads (0: torch's default)

    def __post_init__(self):
        for name in ("adam_beta1", "adam_beta2"):
            b = getattr(self, name)
            if isinstance(b, bool) or not isinstance(b, int | float) or not 0 <= b < 1:
                raise ConfigError(f"TrainConfig.{name}: expected a number in [0, 1), got {b!r}")
        if not _lightning_devices(self.devices):
            raise ConfigError(
                f"TrainConfig.devices: expected auto, a count (-1: all), a list of device "
                f"indices or a string of them ('0,1'), got {self.devices!r}"
            )
        _choice(self, "depth_loss", DEPTH_LOSSES)
        _int_range(self, "ema_warmup_offset", 1, 2**63 - 1)
        _int_range(self, "val_batches", 1, 2**63 - 1)
        positive = ("lr", "num_nodes", "log_every_steps", "val_every_steps")
        fractions = (
            "min_lr_ratio",
            "ema_decay",
            "p_drop_working",
            "p_drop_episodic",
            "p_drop_spatial",
            "p_drop_text",
            "p_cold_start",
            "p_drop_spatial_part",
            "p_depthless_start",
            "p_independent",
        )
        rest = ("max_steps", "weight_decay", "warmup_steps", "grad_clip", "context_noise_max",
                "timestep_logit_std", "depth_loss_weight", "hole_loss_weight", "adv_weight",
                "adv_start_step", "perceptual_weight", "style_weight", "sample_every_steps",
                "ckpt_every_steps", "seed", "threads")  # fmt: skip
        _numbers(
            self,
            **dict.fromkeys(positive, ">0"),
            **dict.fromkeys(fractions, "[0,1]"),
            **dict.fromkeys(rest, ">=0"),
        )


def _lightning_devices(value: Any) -> bool:
    """A ``devices`` Lightning's Trainer takes: "auto", a count >= 1 or -1 (all), a non-empty
    list of device indices, or a string of them ("0,1")."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 1 or value == -1
    if isinstance(value, str):
        return value == "auto" or re.fullmatch(r"-1|\d+(\s*,\s*\d+)*,?", value.strip()) is not None
    if isinstance(value, list | tuple):
        ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        return bool(value) and ok
    return False


MEMORY_MODES = ("none", "working", "episodic", "spatial", "all")
MAX_SAMPLE_SEED = 2**63 - 1  # job seeds are non-negative 64-bit integers


@dataclass
class SampleConfig:
    """Batch generation (sample.py)."""

    checkpoint: str = "checkpoints/worldmem-tiny"  # a WorldPipeline folder
    out_dir: str = "outputs/sample"
    jobs: str | None = None  # JSONL file of jobs; if unset, one job from the fields below
    # The demo: a held-out synthetic world's first frame, its depth and caption, and its walk
    # out and back (datasets/demo_start.py wrote them). image=none starts from the prompt alone;
    # depth=none gives the start frame the depth of the pipeline's depth net (or, without
    # one, the model's).
    prompt: str = (
        "a long corridor with red, beige, teal and blue brick walls, an olive and white "
        "checkered floor, two pink pillars, a purple crate, a yellow sphere, a blue sphere, a "
        "teal statue and two doors"
    )
    image: str | None = "worldmem/assets/demo/start.png"  # start image (none: prompt only)
    depth: str | None = "worldmem/assets/demo/start_depth.npy"  # its depth: .npy metres (H, W)
    trajectory: str = "worldmem/assets/demo/trajectory.json"  # language, .json or RE10K .txt
    num_frames: int = 0  # 0: as many as the trajectory has
    seed: int = 0
    steps: int | None = None  # denoising steps per chunk (None: the checkpoint's own)
    chunk_frames: int | None = None  # frames generated per chunk (None: the checkpoint's own)
    guidance_scale: float = 1.0  # classifier-free guidance on text and memory (1 = off)
    memory: str = "all"
    side_by_side: bool = True  # also write generated | memory render | depth
    fps: int = 8  # frames per second of the written videos
    device: str = "auto"
    overwrite: bool = False  # replace an existing <out_dir>/<job name>/ (else: refuse to run)

    def __post_init__(self):
        _choice(self, "memory", MEMORY_MODES)
        if self.steps is not None:
            _int_range(self, "steps", 1, MAX_SAMPLE_STEPS)
        if self.chunk_frames is not None:  # the model's max_frames bounds it when it loads
            _int_range(self, "chunk_frames", 1, 2**31 - 1)
        _int_range(self, "fps", 1, MAX_FPS)
        _int_range(self, "num_frames", 0, 2**63 - 1)  # the trajectory's length bounds it
        _int_range(self, "seed", 0, MAX_SAMPLE_SEED)
        if not isinstance(self.device, str) or not DEVICE_RE.fullmatch(self.device):
            raise ConfigError(
                f"SampleConfig.device: '{self.device}' is not one of auto, cpu, cuda, cuda:N, mps"
            )
        _numbers(self)
        g = self.guidance_scale
        if isinstance(g, bool) or not isinstance(g, int | float) or not math.isfinite(g) or g < 0:
            raise ConfigError(
                f"SampleConfig.guidance_scale: expected a finite number >= 0, got {g!r}"
            )


@dataclass
class ServerConfig:
    """The interactive web server."""

    host: str = "127.0.0.1"  # address to bind; requests must name it or a loopback Host
    port: int = 8765
    max_sessions: int = 4
    idle_timeout_s: float = 300.0  # a session with no start, keys or reset is closed after this
    reclaim_idle_s: float = 30.0  # when full, a session idle this long is closed for a newcomer
    max_message_bytes: int = 4096
    max_prompt_chars: int = 300
    max_messages_per_s: float = 60.0
    # websocket origins accepted besides the page's own, e.g. ["https://demo.example.org"]
    allowed_origins: list[str] = field(default_factory=list)
    # torch CPU threads while serving (0: one fewer than the cores, at least one: the event
    # loop, PNG encoding and a local page need a core; on 2 cores one thread streamed 12.0-12.2
    # frames/s against 9.5-9.7 with two; python benchmarks/interactive.py tells)
    torch_threads: int = 0

    def __post_init__(self):
        _numbers(self)
        _int_range(self, "port", 0, 65535)
        _int_range(self, "torch_threads", 0, 4096)
        _int_range(self, "max_sessions", 1, 10_000)
        _int_range(self, "max_message_bytes", 1, 1 << 24)
        _int_range(self, "max_prompt_chars", 1, 1 << 20)
        for name in ("idle_timeout_s", "reclaim_idle_s", "max_messages_per_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < math.inf:
                raise ConfigError(f"ServerConfig.{name}: expected a finite number > 0, got {v!r}")
        for origin in self.allowed_origins:
            if not _ORIGIN_RE.fullmatch(str(origin)):
                raise ConfigError(
                    f"ServerConfig.allowed_origins: {origin!r} is not an origin "
                    "(scheme://host[:port], e.g. https://demo.example.org, no path)"
                )


_ORIGIN_RE = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")


@dataclass
class TrainRootConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)

    def __post_init__(self):
        # Values two objects both need: the training samples must be what generation builds.
        pairs = [
            ("model.chunk_frames", self.model.chunk_frames, "data.chunk_frames",
             self.data.chunk_frames),
            ("model.image_size", self.model.image_size, "data.image_size", self.data.image_size),
            ("memory.working_frames", self.memory.working_frames, "data.context_frames",
             self.data.context_frames),
            ("memory.retrieve_k", self.memory.retrieve_k, "data.keyframes", self.data.keyframes),
        ]  # fmt: skip
        for a, va, b, vb in pairs:
            if va != vb:
                raise ConfigError(f"{a}={va} but {b}={vb}: they must be equal")
        need = self.data.context_frames + self.data.keyframes + self.data.chunk_frames
        if self.backbone.kind == "none" and self.model.max_frames < need:
            raise ConfigError(
                f"model.max_frames={self.model.max_frames} < context_frames + keyframes + "
                f"chunk_frames = {need}"
            )


@dataclass
class SampleRootConfig:
    sample: SampleConfig = field(default_factory=SampleConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    actions: ActionConfig = field(default_factory=ActionConfig)


def load_config(schema: type, files: list[str | Path] = (), overrides: list[str] = ()) -> Any:
    """Merge YAML files then ``key=value`` overrides onto ``schema``; return the dataclass.

    A YAML file may start with ``include: [other.yaml, ...]`` (relative paths) to merge other
    presets first, so each value is written in one place.

    Raises ``ConfigError`` naming the offending key (and the valid ones) for unknown keys or
    values of the wrong type, and the file and line (or the override) for YAML that is not
    plain config: syntax errors, tabs, duplicate keys, anchors and aliases, tags, several
    documents, a top level that is not a mapping, ``???`` values.
    """
    cfg = OmegaConf.structured(schema)
    for path in files:
        for part in yaml_with_includes(Path(path)):
            cfg = merge(cfg, part[1], str(part[0]))
    for ov in overrides:
        cfg = merge(cfg, override(ov), f"override '{ov}'")
    return to_object(cfg)


def to_dict(cfg: Any) -> dict:
    """A config dataclass as a plain dict (for checkpoints and job.json)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def from_dict(schema: type, data: dict, where: str = "config") -> Any:
    """Rebuild a config dataclass from a dict, with the same key checking as ``load_config``."""
    return to_object(merge(OmegaConf.structured(schema), data, where))
