"""WorldPipeline: generate a world chunk by chunk, with three memories keeping it consistent.

The loop for one chunk (docs/design.md; docs/architecture.md follows it through the code)::

    cameras -> spatial.render -> episodic.retrieve -> working.frames -> denoise
            -> chunk out -> working.push, episodic.maybe_add, spatial.insert

A pipeline folder (``save_pretrained`` / ``from_pretrained``) holds ``model/`` (the diffusers
``WorldDiT`` weights and config), ``pipeline.json`` (format version, memory and sampler
settings, the camera field of view the model was trained with) and, where a ``DepthNet``
gives a start image without depth or what the model invents its depth
(``sampler.start_depth`` / ``sampler.generated_depth: depth_net`` or ``room``),
``depth_net/``; ``pipeline_files.py`` reads and writes it and the world state files,
``pipeline_checks.py`` holds the checks of what the pipeline is given and of what its model
gives back.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from worldmem.chunk import Chunk
from worldmem.config import (
    ActionConfig,
    MemoryConfig,
    ModelConfig,
    from_dict,
    to_dict,
)
from worldmem.data.batch import Conditioning
from worldmem.data.inputs import assemble_inputs, memories_for_mode
from worldmem.geometry import DEFAULT_FOV_DEG, intrinsics_from_fov, unproject_depth
from worldmem.geometry.actions import KEYS, apply_actions
from worldmem.geometry.trajectory import MAX_TRAJECTORY_FRAMES
from worldmem.memory import EpisodicMemory, SpatialMemory, WorkingMemory
from worldmem.memory.guesses import outside_observed, relax_guesses
from worldmem.memory.layout import BoxLayout
from worldmem.memory.texture import SURFACE_KINDS, WALL, ExemplarTexture, without_cracks
from worldmem.models import WorldDiT, build_codec
from worldmem.models.depth_net import DepthNet
from worldmem.models.detail_flow import DetailFlow
from worldmem.models.detail_net import DetailNet
from worldmem.models.elevation import frames_default
from worldmem.models.first_frame import FirstFrameNet
from worldmem.models.first_frame_bank import FirstFrameBank
from worldmem.models.loading import load_world_model
from worldmem.pipeline_checks import MAX_FOCAL_PER_PIXEL as MAX_FOCAL_PER_PIXEL
from worldmem.pipeline_checks import MAX_PRINCIPAL_OFFSET as MAX_PRINCIPAL_OFFSET
from worldmem.pipeline_checks import (
    check_chunk_frames,
    check_flag,
    check_intrinsics,
    check_output,
    check_start_depth_scale,
    check_texture_gain,
    describe,
    finite_float32,
)
from worldmem.pipeline_files import (
    FORMAT_VERSION,
    STATE_FORMAT_VERSION,
    read_pipeline_json,
    read_state_file,
    state_path,
    write_pipeline_json,
    write_state_file,
)
from worldmem.text_check import check_text
from worldmem.world_state import WorldState, check_poses, check_seed

__all__ = [
    "WorldPipeline",
    "WorldState",
    "Chunk",
    "FORMAT_VERSION",
    "STATE_FORMAT_VERSION",
    "memories_for_mode",
    "resolve_device",
]

# what gives a start image without depth its depth (pipeline.json: sampler.start_depth), and
# a generated frame where its memory render held no observed sample (sampler.generated_depth)
DEPTH_SOURCES = ("model", "depth_net")
# and for a generated frame only, "room": where the room shows a surface the observed frames
# showed, the room's depth; elsewhere the depth net's
GENERATED_DEPTH_SOURCES = (*DEPTH_SOURCES, "room")
NEEDS_DEPTH_NET = ("depth_net", "room")  # the sources that need a DepthNet
# what draws texture on a generated frame where its memory render showed nothing observed
# (sampler.detail): nothing, a DetailFlow or a DetailNet (its folder); a DetailFlow is a
# DetailNet, so it comes first and saving finds its own name
DETAIL_SOURCES = {
    "none": None,
    "detail_flow": ("detail_flow", DetailFlow),
    "detail_net": ("detail_net", DetailNet),
}
# what a world begun from a prompt alone starts from (sampler.prompt_start): the model's first
# chunk from empty memories, an image a FirstFrameNet draws for the prompt, or a real frame
# and its depth a FirstFrameBank retrieves for it
PROMPT_STARTS = {
    "model": None,
    "first_frame": ("first_frame", FirstFrameNet),
    "bank": ("first_frame_bank", FirstFrameBank),
}

# memory frames whose stem features generation keeps (WorldDiT.cache_memory_stems): the
# context and every keyframe slot of several chunks
MEMORY_STEM_CACHE = 32


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _named_helper(path: Path, meta: dict, overrides: dict, key: str, slot: str, sources: dict):
    """The helper that ``pipeline.json``'s ``sampler[key]`` names: ``sources`` maps each
    value to (its folder, its class), or None for none; older folders name none (the first).
    An override of ``slot`` (a helper, or None) wins over the folder."""
    value = meta["sampler"].get(key, next(iter(sources)))
    if value not in sources:
        raise ValueError(
            f"{path / 'pipeline.json'}: sampler: {key}: expected one of {', '.join(sources)}, "
            f"got {value!r}"
        )
    if slot in overrides:
        return overrides.pop(slot)
    if sources[value] is None:
        return None
    folder, cls = sources[value]
    return cls.from_pretrained(path / folder)


def _saved_helper(path: Path, helper, sources: dict) -> str:
    """The ``sources`` value that names ``helper`` (``_named_helper``'s table), its files
    written to its folder under ``path``; the first value (none) for None."""
    for value, source in sources.items():
        if source is not None and isinstance(helper, source[1]):
            helper.save_pretrained(path / source[0])
            return value
    return next(iter(sources))


class WorldPipeline:
    """A world model (model, codec, sampler) and the world it steps. ``start`` a world, then
    ``step`` cameras or keyboard actions through it; ``save_state``/``load_state`` pause and
    resume it exactly.

    ``pipe.state`` is the current world (a ``WorldState``: memories, pose, random state, frame
    count, prompt, memory mode, seed). Every method that reads or changes a world takes
    ``world=``: another ``WorldState`` (from ``new_state``) to step instead, so one model
    serves any number of worlds. ``pipe.spatial``, ``pipe.c2w`` and the like read the current
    world."""

    def __init__(
        self,
        model: WorldDiT,
        model_cfg: ModelConfig,
        memory_cfg: MemoryConfig,
        steps: int = 4,
        guidance_scale: float = 1.0,
        fov_deg: float = DEFAULT_FOV_DEG,
        actions: ActionConfig | None = None,
        device: str | torch.device = "cpu",
        codec: torch.nn.Module | None = None,
        stochastic: bool = True,
        fov_y_deg: float | None = None,
        start_depth_scale: float = 1.0,
        depth_net: DepthNet | None = None,
        generated_depth: str = "model",
        start_depth: str | None = None,
        detail_net: DetailNet | None = None,
        first_frame: FirstFrameNet | FirstFrameBank | None = None,
        texture_gain: float = 0.0,
        wall_texture_gain: float | None = None,
        pattern_detail: bool = False,
        chunk_frames: int | None = None,
        pattern_whole: bool = False,
    ):
        from worldmem.diffusion import WorldSampler

        self.start_depth_scale = check_start_depth_scale(start_depth_scale)
        # the observed frames' texture laid on what the model invents, its band times this
        # (0: none; memory/texture.py)
        self.texture_gain = check_texture_gain(texture_gain)
        # the walls' (None: texture_gain): their texture is a square of another wall, not the
        # floor's or ceiling's pattern continued, and costs more than it gives at full gain
        self.wall_texture_gain = (
            None
            if wall_texture_gain is None
            else check_texture_gain(wall_texture_gain, "wall_texture_gain")
        )
        # where memory passes observed samples of a floor or ceiling whose pattern is known in
        # the world's phase, the finer detail a nearer frame resolves (texture.detail)
        self.pattern_detail = check_flag(pattern_detail, "pattern_detail")
        # a pattern known in the world's phase laid whole where the model invents (its squares
        # and stripes at every size, at gain 1) rather than as its band times the gain, whose
        # edges alone it would brighten (texture._Patch)
        self.pattern_whole = check_flag(pattern_whole, "pattern_whole")
        # target frames generated together (None: the model's trained chunk_frames); the
        # model gives its memory frames' keys and values once a chunk, so a longer chunk
        # costs less per frame, and its later frames draw on memory as it was at its start
        self.chunk_setting = check_chunk_frames(chunk_frames, model_cfg.max_frames)
        if self._lays_texture and detail_net is not None:
            raise ValueError(
                "texture_gain and detail_net both draw texture where memory observed nothing: "
                "give one of them"
            )
        if self._builds_texture and memory_cfg.kept_observed_frames == 0:
            raise ValueError(
                "texture_gain, pattern_detail: the texture comes from the observed frames "
                "the spatial memory keeps, and this memory config keeps none (it needs "
                "memory.render_colour 'resample', memory.guess_relax > 0 or memory.layout, "
                "and memory.free_space_views > 0)"
            )
        # what was last built from a world's observed frames, by name ("texture": its
        # ExemplarTexture, "layout": its BoxLayout): (world, the observed rgb, it)
        self._built_from_observed: dict[str, tuple] = {}
        if depth_net is not None and depth_net.cfg.image_size != model_cfg.image_size:
            raise ValueError(
                f"depth_net: trained at {depth_net.cfg.image_size} px, the model at "
                f"{model_cfg.image_size} px"
            )

        self.device = resolve_device(str(device))
        self.model = model.to(self.device).eval()
        self.depth_net = None if depth_net is None else depth_net.to(self.device).eval()
        if detail_net is not None and detail_net.cfg.image_size != model_cfg.image_size:
            raise ValueError(
                f"detail_net: trained at {detail_net.cfg.image_size} px, the model at "
                f"{model_cfg.image_size} px"
            )
        # draws texture on the frames shown where memory observed nothing (None: none)
        self.detail_net = None if detail_net is None else detail_net.to(self.device).eval()
        if isinstance(first_frame, FirstFrameNet):
            first_frame = first_frame.to(self.device).eval()
        if first_frame is not None and first_frame.image_size != model_cfg.image_size:
            raise ValueError(
                f"first_frame: gives {first_frame.image_size} px frames, the model draws "
                f"{model_cfg.image_size} px"
            )
        # what a world begun from a prompt alone starts from: a FirstFrameNet's drawing, a
        # FirstFrameBank's retrieved frame and depth, or (None) the model's first chunk from
        # empty memories
        self.first_frame = first_frame
        if start_depth is None:  # a net given is a net used for start images
            start_depth = "model" if depth_net is None else "depth_net"
        for name, value, allowed in (
            ("start_depth", start_depth, DEPTH_SOURCES),
            ("generated_depth", generated_depth, GENERATED_DEPTH_SOURCES),
        ):
            if value not in allowed:
                raise ValueError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
            if value in NEEDS_DEPTH_NET and depth_net is None:
                raise ValueError(f"{name}: {value!r} needs a depth_net")
        if generated_depth == "room" and memory_cfg.layout == "none":
            raise ValueError("generated_depth: 'room' needs a room (memory.layout: box)")
        # what gives a start image without depth its depth, and a generated frame where its
        # memory render held no observed sample (elsewhere it is always the model's)
        self.start_depth, self.generated_depth = start_depth, generated_depth
        if hasattr(self.model, "cache_memory_stems"):
            self.model.cache_memory_stems(MEMORY_STEM_CACHE)
        self.model_cfg = model_cfg
        self.memory_cfg = memory_cfg
        # codec: the model's own (a backbone brings its video VAE); default from model_cfg
        self.codec = build_codec(model_cfg) if codec is None else codec
        if hasattr(self.codec, "to"):
            self.codec = self.codec.to(self.device)
        self.sampler = WorldSampler(
            self.model, self.codec, steps, guidance_scale, stochastic=stochastic
        )
        self.stochastic = stochastic
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.fov_deg = float(fov_deg)
        self.fov_y_deg = None if fov_y_deg is None else float(fov_y_deg)
        self.actions = actions or ActionConfig()
        self.size = model_cfg.image_size
        K = intrinsics_from_fov(fov_deg, self.size, self.size, fov_y_deg)
        self.K = K.to(self.device)
        if isinstance(first_frame, FirstFrameBank) and not torch.allclose(
            first_frame.K, K.float().cpu(), rtol=1e-3, atol=1e-3
        ):
            raise ValueError(
                f"first_frame: the bank's frames were seen with K {first_frame.K.tolist()}, "
                f"this pipeline's camera is {K.tolist()}"
            )
        self.state = self.new_state()

    # -- construction and persistence -------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "auto", **overrides) -> WorldPipeline:
        """Load a pipeline folder written by ``save_pretrained``. ``overrides`` may set
        ``steps``, ``guidance_scale``, ``stochastic``, ``start_depth_scale``, ``depth_net``
        (a ``DepthNet``, or None for the model's depth throughout), ``start_depth``
        (``DEPTH_SOURCES``) and ``generated_depth`` (``GENERATED_DEPTH_SOURCES``),
        ``detail_net`` (a ``DetailNet``, or None to draw no detail), ``texture_gain``,
        ``wall_texture_gain``, ``pattern_detail``, ``pattern_whole``, ``chunk_frames``,
        ``first_frame`` (a ``FirstFrameNet``, or None for the model's own prompt-only start)
        or ``memory_cfg``."""
        path = Path(path)
        meta = read_pipeline_json(path)
        meta_path = path / "pipeline.json"
        model_cfg = from_dict(ModelConfig, meta["model"], f"{meta_path}: model")
        memory_cfg = overrides.pop("memory_cfg", None) or from_dict(
            MemoryConfig, meta["memory"], f"{meta_path}: memory"
        )
        try:  # older folders have neither: the depth the model gives, unscaled; no texture
            saved_scale = check_start_depth_scale(meta["sampler"].get("start_depth_scale", 1.0))
            saved_gain = check_texture_gain(meta["sampler"].get("texture_gain", 0.0))
            saved_wall_gain = meta["sampler"].get("wall_texture_gain")
            if saved_wall_gain is not None:
                saved_wall_gain = check_texture_gain(saved_wall_gain, "wall_texture_gain")
            saved_detail, saved_whole = (
                check_flag(meta["sampler"].get(key, False), key)
                for key in ("pattern_detail", "pattern_whole")
            )
            saved_chunk = check_chunk_frames(
                meta["sampler"].get("chunk_frames"), model_cfg.max_frames
            )
        except ValueError as e:
            raise ValueError(f"{meta_path}: sampler: {e}") from None
        chunk_frames = overrides.pop("chunk_frames", None)  # None: the folder's
        # older folders name neither: the model's depth (start_depth None: the net's if one
        # is given, so a net passed to an older folder is used for start images)
        sources = {"start_depth": None, "generated_depth": "model"}
        allowed = {"start_depth": DEPTH_SOURCES, "generated_depth": GENERATED_DEPTH_SOURCES}
        for key in sources:
            sources[key] = meta["sampler"].get(key, sources[key])
            if sources[key] is not None and sources[key] not in allowed[key]:
                raise ValueError(
                    f"{meta_path}: sampler: {key}: expected one of {', '.join(allowed[key])}, "
                    f"got {sources[key]!r}"
                )
        if "depth_net" in overrides:
            depth_net = overrides.pop("depth_net")
        elif set(NEEDS_DEPTH_NET) & set(sources.values()):
            depth_net = DepthNet.from_pretrained(path / "depth_net")
        else:
            depth_net = None
        # a depth net taken away (depth_net=None) takes its uses with it
        saved = sources if depth_net is not None else dict.fromkeys(sources)
        generated_depth = overrides.pop("generated_depth", saved["generated_depth"] or "model")
        start_depth = overrides.pop("start_depth", saved["start_depth"])
        detail_net = _named_helper(path, meta, overrides, "detail", "detail_net", DETAIL_SOURCES)
        first_frame = _named_helper(
            path, meta, overrides, "prompt_start", "first_frame", PROMPT_STARTS
        )
        model, codec = load_world_model(path / "model", model_cfg)  # WorldDiT or a backbone
        if hasattr(model, "model_config") and model.model_config() != model_cfg:
            saved, said = to_dict(model.model_config()), to_dict(model_cfg)
            diff = {k: (said[k], saved[k]) for k in said if said[k] != saved[k]}
            raise ValueError(
                f"{meta_path}: its model section disagrees with {path / 'model' / 'config.json'}"
                f" on (pipeline.json, config.json): {diff}"
            )
        return cls(
            model,
            model_cfg,
            memory_cfg,
            steps=overrides.pop("steps", None) or meta["sampler"]["steps"],
            guidance_scale=overrides.pop("guidance_scale", meta["sampler"]["guidance_scale"]),
            stochastic=overrides.pop("stochastic", meta["sampler"]["stochastic"]),
            start_depth_scale=overrides.pop("start_depth_scale", saved_scale),
            depth_net=depth_net,
            generated_depth=generated_depth,
            start_depth=start_depth,
            detail_net=detail_net,
            first_frame=first_frame,
            texture_gain=overrides.pop("texture_gain", saved_gain),
            wall_texture_gain=overrides.pop("wall_texture_gain", saved_wall_gain),
            pattern_detail=overrides.pop("pattern_detail", saved_detail),
            pattern_whole=overrides.pop("pattern_whole", saved_whole),
            chunk_frames=saved_chunk if chunk_frames is None else chunk_frames,
            fov_deg=meta["camera"]["fov_deg"],
            fov_y_deg=meta["camera"].get("fov_y_deg"),
            device=device,
            codec=codec,
            **overrides,
        )

    @classmethod
    def from_module(
        cls, module, fov_deg: float = DEFAULT_FOV_DEG, fov_y_deg: float | None = None
    ) -> WorldPipeline:
        """A pipeline over a training module's EMA weights, its cameras those of the training
        frames (``WorldDataset.field_of_view``)."""
        return cls(
            module.ema,
            module.cfg.model,
            module.cfg.memory,
            fov_deg=fov_deg,
            fov_y_deg=fov_y_deg,
            device=module.device,
            codec=module.codec,
        )

    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``model/``, ``pipeline.json`` and (with a depth net, a detail net, a
        first-frame net or bank) ``depth_net/``, ``detail_net/``, ``first_frame/`` or
        ``first_frame_bank/`` to ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path / "model")
        if self.depth_net is not None:
            self.depth_net.save_pretrained(path / "depth_net")
        detail = _saved_helper(path, self.detail_net, DETAIL_SOURCES)
        prompt_start = _saved_helper(path, self.first_frame, PROMPT_STARTS)
        meta = {
            "model": to_dict(self.model_cfg),
            "memory": to_dict(self.memory_cfg),
            "sampler": {
                "steps": self.steps,
                "guidance_scale": self.guidance_scale,
                "stochastic": self.stochastic,
                "start_depth_scale": self.start_depth_scale,
                "start_depth": self.start_depth,
                "generated_depth": self.generated_depth,
                "detail": detail,
                "texture_gain": self.texture_gain,
                "wall_texture_gain": self.wall_texture_gain,
                "pattern_detail": self.pattern_detail,
                "pattern_whole": self.pattern_whole,
                "chunk_frames": self.chunk_setting,
                "prompt_start": prompt_start,
            },
            "camera": {"fov_deg": self.fov_deg, "fov_y_deg": self.fov_y_deg},
        }
        write_pipeline_json(path, meta)
        return path

    # -- the world --------------------------------------------------------------------------

    def new_state(self, seed: int = 0, prompt: str = "", memory: str = "all") -> WorldState:
        """An empty world for this pipeline (its memory config and device): empty memories,
        the camera at the identity pose, the generator seeded with ``seed``. Step it with
        ``world=``, or make it the current world with ``pipe.state = ...``."""
        return WorldState.new(self.memory_cfg, self.device, seed, prompt, memory)

    def _world(self, world: WorldState | None) -> WorldState:
        """The world a call acts on: ``world``, or the current one."""
        if world is None:
            return self.state
        if not isinstance(world, WorldState):
            raise ValueError(f"world: expected a WorldState, got {type(world).__name__}")
        if world.memory_cfg != self.memory_cfg or world.device != self.device:
            raise ValueError(
                "world: built for another memory config or device; make it with new_state"
            )
        return world

    # Read-only views of the current world, for callers that predate ``state``
    @property
    def spatial(self) -> SpatialMemory:
        return self.state.spatial

    @property
    def episodic(self) -> EpisodicMemory:
        return self.state.episodic

    @property
    def working(self) -> WorkingMemory:
        return self.state.working

    @property
    def generator(self) -> torch.Generator:
        return self.state.generator

    @property
    def c2w(self) -> torch.Tensor:
        return self.state.c2w

    @property
    def start_c2w(self) -> torch.Tensor:
        return self.state.start_c2w

    @property
    def prompt(self) -> str:
        return self.state.prompt

    @property
    def memory_mode(self) -> str:
        return self.state.memory_mode

    @property
    def frame_count(self) -> int:
        return self.state.frame_count

    @property
    def seed(self) -> int:
        return self.state.seed

    @property
    def chunk_frames(self) -> int:
        """Frames the model generates at a time (``chunk_frames``, else as trained)."""
        return self.chunk_setting or self.model_cfg.chunk_frames

    @property
    def min_chunk_frames(self) -> int:
        """The fewest frames a chunk generates (a shorter one is padded by holding its last
        camera): as many as the model was trained with, or ``chunk_frames`` if fewer."""
        return min(self.chunk_frames, self.model_cfg.chunk_frames)

    def start(
        self,
        prompt: str = "",
        image: torch.Tensor | None = None,
        depth: torch.Tensor | None = None,
        c2w: torch.Tensor | None = None,
        seed: int = 0,
        memory: str = "all",
        world: WorldState | None = None,
        draw_first: bool | None = None,
    ) -> Chunk | None:
        """Begin a new world (all memories cleared) in ``world`` (default: the current one).

        prompt: the caption. image ``(3, H, W)`` in [0, 1] (optional): the first frame, seen
        from ``c2w`` ``(4, 4)`` (default identity); depth ``(1, H, W)`` metres (optional: without
        it, the pipeline's ``depth_net`` gives it, or without one the first chunk the model
        generates at the image's camera; either times ``start_depth_scale``).
        Without an image, ``draw_first`` (default: whether the pipeline has a ``first_frame``)
        takes the first frame for the prompt from it, drawn from ``seed`` with a generator of
        its own (the world then goes on as from that image with the same seed): a
        ``FirstFrameNet``'s drawing, which the world begins from as from an image without
        depth, or a ``FirstFrameBank``'s real frame, which it begins from with the frame's
        depth. False begins with empty memories (the model's first chunk is then drawn from
        the prompt alone).
        Returns, for an image without depth (given or drawn), the frames that gave it its
        depth (the depth net's: the image with that depth, one frame; the model's: the chunk
        it generated), else None.
        A call that raises, whether refused at the checks or failing in the model or a
        memory, leaves the previous world as it was.
        """
        # Everything is checked before the world is touched: a refused call changes nothing.
        world = self._world(world)
        check_text(prompt, "prompt")
        check_seed(seed)
        memories_for_mode(memory)
        if c2w is not None:
            if not isinstance(c2w, torch.Tensor) or tuple(c2w.shape) != (4, 4):
                got = tuple(c2w.shape) if isinstance(c2w, torch.Tensor) else type(c2w).__name__
                raise ValueError(f"c2w: expected a (4, 4) tensor, got {got}")
            c2w = self._check_poses(c2w[None], "c2w")[0]
        if image is not None:
            image = self._check_image(image)
        if depth is not None:
            want = (1, self.size, self.size)
            if image is None or not isinstance(depth, torch.Tensor) or tuple(depth.shape) != want:
                got = "depth without an image" if image is None else describe(depth)
                raise ValueError(f"depth: expected {want} with an image, got {got}")
            depth = finite_float32(depth, "depth", non_negative=True)
        if draw_first not in (None, True, False):
            raise ValueError(f"draw_first: expected None, True or False, got {draw_first!r}")
        if draw_first and self.first_frame is None:
            raise ValueError("draw_first: this pipeline has no first_frame net or bank")
        # The new world is built aside, in new memory objects with a new generator; ``world``
        # takes them only when it is complete, so a start failing part-way (the model, or a
        # memory) leaves the old world as it was.
        new = self.new_state(seed, prompt, memory)
        if image is None and (self.first_frame is not None if draw_first is None else draw_first):
            image, depth, new.began_from = self.first_frame_for(prompt, seed)
        chunk = self._start(new, image, depth, c2w)
        world.become(new)
        # what the observed frames give is built now, not when the first key is pressed
        self._layout(world)
        if self._builds_texture:
            self._texture(world)
        return chunk

    def first_frame_for(
        self, prompt: str, seed: int
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
        """What ``start(prompt, seed=seed)`` without an image begins from, given this
        pipeline's ``first_frame``: (image ``(3, S, S)``, depth ``(1, S, S)`` metres or None
        for a drawing (the world gives it its depth), what it is: ``{"kind": "bank",
        "source": <episode>:<frame>, "caption": ..., "similarity": ...}`` or ``{"kind":
        "first_frame_net"}``). Drawn with a generator of its own seeded with ``seed``, so the
        world that follows is the one begun from that image with the same seed."""
        if self.first_frame is None:
            raise ValueError("first_frame_for: this pipeline has no first_frame net or bank")
        check_text(prompt, "prompt")
        check_seed(seed)
        g = torch.Generator().manual_seed(seed)
        if isinstance(self.first_frame, FirstFrameBank):
            bank = self.first_frame
            image, depth, i = bank.draw(prompt, g)
            info = {
                "kind": "bank",
                "source": bank.sources[i],
                "caption": bank.captions[i],
                "similarity": round(float(bank.similarity(prompt)[i]), 4),
            }
            return image.to(self.device), depth.to(self.device), info
        image = self.first_frame.generate([prompt], generator=g)[0]
        check_output(image[None], image[None, :1], 0, "start: the first-frame net")
        return image, None, {"kind": "first_frame_net"}

    def _start(
        self,
        new: WorldState,
        image: torch.Tensor | None,
        depth: torch.Tensor | None,
        c2w: torch.Tensor | None,
    ) -> Chunk | None:
        """``start`` after its checks, in the empty world ``new``."""
        if c2w is not None:
            new.c2w = c2w.to(self.device, torch.float32)
            new.start_c2w = new.c2w.clone()
        if image is None:
            return None
        if depth is not None:
            self._remember(
                new, image[None], depth[None].to(self.device), new.c2w[None], observed=True
            )
            return None
        if self.start_depth == "depth_net":
            return self._start_with_depth_net(new, image)
        # No depth: give the image as context and generate the same view; the generated depth
        # (and the image itself) then enter the memories.
        new.working.push(
            image[None],
            torch.zeros(1, 1, self.size, self.size, device=self.device),
            new.c2w[None],
            self.K[None],
            step=0,
        )
        T = self.min_chunk_frames  # one camera, held
        chunk = self._generate(
            new,
            new.c2w[None].expand(T, 4, 4),
            self.K.expand(T, 3, 3),
            remember=False,
            own_depth=True,
            where="start: the chunk giving the image its depth",
        )
        new.working = WorkingMemory(self.memory_cfg.working_frames)
        # the model's depth for an image is too near where it is unsure (it regresses inverse
        # depth); start_depth_scale, fitted on worlds it was not trained on, corrects its median
        chunk.depth = chunk.depth * self.start_depth_scale
        self._remember(new, image[None], chunk.depth[:1], new.c2w[None], observed=True)
        return chunk

    @torch.no_grad()
    def _depth_where_unobserved(
        self,
        rgb: torch.Tensor,
        depth: torch.Tensor,
        observed: torch.Tensor,
        room: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The depth of generated frames rgb ``(T, 3, S, S)``: the model's ``depth`` ``(T, 1,
        S, S)`` where the memory render showed an observed sample (``observed`` ``(T, 1, S,
        S)`` > 0.5: there it gives back that surface), the depth net's depth of the frame
        elsewhere. What the model invents it draws well enough in colour but not in depth:
        continued from the memory render's edges, its guessed surfaces recede view after
        view and then cover later views as a far backdrop.

        With ``room``, the room's depth ``(T, 1, S, S)`` and where it shows a surface the
        observed frames showed (``layout.BoxLayout.seen_depth``), that depth stands there
        in place of the depth net's: a floor, a ceiling or a wall the frames measured,
        continued where the model draws it (over the walk protocol's invented pixels, mean
        log-depth error on the floor and ceiling 0.32 against the net's 0.53, on the walls
        seen 0.08 against 0.35)."""
        guessed = self.depth_net(rgb)
        check_output(rgb, guessed, 0, "the depth net's depth for a generated chunk")
        if room is not None:
            guessed = torch.where(room[1], room[0].to(guessed), guessed)
        return torch.where(observed > 0.5, depth, guessed)

    @torch.no_grad()
    def _start_with_depth_net(self, new: WorldState, image: torch.Tensor) -> Chunk:
        """The depth net's depth for a start ``image`` (times ``start_depth_scale``) into the
        empty world ``new``, with the image -> a one-frame ``Chunk`` of both."""
        t0 = time.perf_counter()
        depth = self.depth_net(image[None].to(self.device)) * self.start_depth_scale
        check_output(image[None], depth, 0, "start: the depth net's depth for the image")
        self._remember(new, image[None], depth, new.c2w[None], observed=True)
        zeros = torch.zeros_like(image[None])
        return Chunk(
            rgb=image[None],
            depth=depth,
            c2w=new.c2w[None].clone(),
            K=self.K[None].clone(),
            memory_rgb=zeros,
            memory_depth=zeros[:, :1],
            memory_mask=zeros[:, :1],
            frame_index=torch.zeros(1, dtype=torch.long),
            timing={"depth_s": time.perf_counter() - t0},
        )

    def _check_image(self, image: torch.Tensor) -> torch.Tensor:
        want = (3, self.size, self.size)
        if not isinstance(image, torch.Tensor) or tuple(image.shape) != want:
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"image: expected a tensor of shape {want} in [0, 1], got {got}")
        return finite_float32(image, "image").to(self.device).clamp(0, 1)

    def check_cameras(
        self, c2w: torch.Tensor, K: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The checks ``step`` makes of its cameras, for callers that want to refuse a whole
        trajectory before generating any of it: c2w ``(N, 4, 4)``, K ``(N, 3, 3)`` or None
        -> both as float32 on the device. ``ValueError`` names the first bad camera."""
        if not isinstance(c2w, torch.Tensor) or c2w.ndim != 3 or tuple(c2w.shape[1:]) != (4, 4):
            raise ValueError(f"cameras: expected c2w (N, 4, 4), got {describe(c2w)}")
        c2w = self._check_poses(c2w, "cameras")
        return c2w, None if K is None else self._check_intrinsics(K, len(c2w))

    def _check_poses(self, c2w: torch.Tensor, name: str) -> torch.Tensor:
        """Rigid, finite in float32 and inside the spatial memory's voxel grid (with room for
        the farthest depth it inserts): ``(N, 4, 4)`` -> float32 on the device."""
        return check_poses(c2w, self.memory_cfg, name).to(self.device)

    def _check_intrinsics(self, K: torch.Tensor, n: int, name: str = "K") -> torch.Tensor:
        """Pinhole intrinsics ``(n, 3, 3)`` at the model's frame size (``check_intrinsics``)
        -> float32 on the device."""
        return check_intrinsics(K, n, self.size, name).to(self.device)

    def step(
        self,
        cameras: torch.Tensor | list[str],
        K: torch.Tensor | None = None,
        world: WorldState | None = None,
        on_chunk: Callable[[Chunk], None] | None = None,
    ) -> Chunk:
        """Generate frames of ``world`` (default: the current one) at ``cameras``: c2w
        ``(N, 4, 4)``, or a list of N action keys (``w``, ``left``, ...) applied from the
        world's current pose. ``K`` ``(N, 3, 3)`` are pixel intrinsics at the model's image
        size (default: the pipeline's field of view).

        Frames are generated ``chunk_frames`` at a time; returns all N frames as one Chunk.
        ``on_chunk`` (optional) is called with each chunk as soon as it is generated (e.g. to
        report progress).
        A call that raises, whether refused at the checks or failing in any chunk, leaves the
        world as it was before it. A chunk whose frames come out of the model with NaN or
        infinite values raises ``RuntimeError`` naming the chunk and the frame.
        """
        # Everything is checked before the world is touched: a refused call changes nothing.
        world = self._world(world)
        if isinstance(cameras, (list, tuple)):
            if not 1 <= len(cameras) <= MAX_TRAJECTORY_FRAMES:
                raise ValueError(
                    f"cameras: expected 1 to {MAX_TRAJECTORY_FRAMES} action keys, "
                    f"got {len(cameras)}"
                )
            bad = next((k for k in cameras if not isinstance(k, str) or k not in KEYS), None)
            if bad is not None:
                raise ValueError(f"cameras: unknown action key {bad!r}; valid: {', '.join(KEYS)}")
            cameras = apply_actions(world.c2w.cpu(), list(cameras), self.actions)
        if (
            not isinstance(cameras, torch.Tensor)
            or cameras.ndim != 3
            or tuple(cameras.shape[1:]) != (4, 4)
            or not 1 <= len(cameras) <= MAX_TRAJECTORY_FRAMES
        ):
            raise ValueError(
                f"cameras: expected c2w (N, 4, 4) with 1 <= N <= {MAX_TRAJECTORY_FRAMES} or a "
                f"list of keys, got {describe(cameras)}"
            )
        cameras = self._check_poses(cameras, "cameras")
        if K is None:
            K = self.K.expand(len(cameras), 3, 3)
        else:
            K = self._check_intrinsics(K, len(cameras))
        T = self.chunk_frames
        # Each chunk changes the memories in place; a chunk that fails part-way through the
        # call puts back this copy (one per call, not per chunk).
        before = world.state_dict()
        try:
            out = []
            chunks = math.ceil(len(cameras) / T)
            for i in range(0, len(cameras), T):
                cams, Ks = cameras[i : i + T], K[i : i + T]
                n = len(cams)
                pad = self.min_chunk_frames - n
                if pad > 0:  # pad a short chunk by holding its last camera, keep only n frames
                    cams = torch.cat([cams, cams[-1:].expand(pad, 4, 4)])
                    Ks = torch.cat([Ks, Ks[-1:].expand(pad, 3, 3)])
                where = f"step: chunk {i // T + 1} of {chunks} (cameras {i} to {i + n - 1})"
                out.append(self._generate(world, cams, Ks, keep=n, where=where))
                if on_chunk is not None:
                    on_chunk(out[-1])
        except BaseException:
            world.restore(before)
            raise
        return Chunk.cat(out)

    def model_inputs(
        self, cams: torch.Tensor, K: torch.Tensor, world: WorldState | None = None
    ) -> Conditioning:
        """The ``Conditioning`` the model is given for targets at ``cams`` ``(T, 4, 4)``, ``K``
        ``(T, 3, 3)`` from the memories of ``world`` (default: the current one) as they stand
        (``assemble_inputs``, the same function the training data uses)."""
        world = self._world(world)
        conditioning = assemble_inputs(
            cams,
            K,
            self.size,
            mode=world.memory_mode,
            spatial=world.spatial,
            episodic=world.episodic,
            working=world.working.frames() if len(world.working) else None,
            context_frames=self.memory_cfg.working_frames,
            keyframes=self.memory_cfg.retrieve_k,
            caption=world.prompt,
        )
        room = self._room(conditioning, world)
        relaxed = self._relax_guesses(conditioning, world, room)
        if room is None:
            return relaxed
        # the render's holes tend to the room (the model's own default without it)
        return dataclasses.replace(relaxed, hole_rgb=room[0][None], hole_depth=room[1][None])

    def _room(self, c: Conditioning, world: WorldState) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The box room of ``world``'s observed frames (``memory.layout: box``) seen from the
        targets of ``c``: rgb ``(T, 3, S, S)``, depth ``(T, 1, S, S)``; None without it."""
        layout = self._layout(world)
        if layout is None:
            return None
        rgb, depth, _ = layout.render(c.c2w[0], c.K[0], c.memory_rgb.shape[-1])
        return rgb.to(c.memory_rgb.device), depth.to(c.memory_depth.device)

    def _layout(self, world: WorldState) -> BoxLayout | None:
        """The box room of ``world``'s kept observed frames (``memory.layout``), fitted again
        only when they change; None when the layout is off (``_from_observed``)."""
        if self.memory_cfg.layout == "none":
            return None
        return self._from_observed(world, "layout", BoxLayout.from_frames)

    def _from_observed(self, world: WorldState, name: str, build: Callable):
        """``build`` of ``world``'s kept observed frames, built again only when they change;
        None without any, or when the world's memory mode gives no spatial memory (what is
        built from them is that memory's)."""
        frames = world.spatial.observed_frames()
        if not frames or "spatial" not in memories_for_mode(world.memory_mode):
            return None
        built_for, kept, built = self._built_from_observed.get(name, (None, (), None))
        same = len(kept) == len(frames) and all(a is b[2] for a, b in zip(kept, frames))
        if built_for is not world or not same:
            built = build(frames)
            self._built_from_observed[name] = (world, tuple(f[2] for f in frames), built)
        return built

    def _relax_guesses(
        self,
        conditioning: Conditioning,
        world: WorldState,
        room: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Conditioning:
        """``conditioning`` with the generated pixels of its memory render moved towards what
        the observed frames of ``world`` show along elevation, or towards the ``room``'s
        colours when given (``memory/guesses.py``, ``memory.guess_relax``); unchanged when
        that is 0 or nothing observed is kept."""
        relax = self.memory_cfg.guess_relax
        c = conditioning
        generated = (c.memory_mask > 0.5) & (c.memory_observed <= 0.5)
        if relax <= 0 or not bool(generated.any()):
            return c
        S = c.memory_rgb.shape[-1]
        frames = world.spatial.observed_frames()
        prior = room[0] if room is not None else frames_default(frames, c.c2w[0], c.K[0], S)
        if prior is None:
            return c
        cfg = self.memory_cfg
        outside = None
        if cfg.guess_relax_outside_deg > 0:
            outside = outside_observed(c.c2w[0], c.K[0], S, frames)
        rgb = relax_guesses(
            c.memory_rgb[0],
            c.memory_mask[0],
            c.memory_observed[0],  # assemble_inputs always gives it
            prior.to(c.memory_rgb.device),
            relax,
            cfg.guess_relax_near_px,
            outside,
            cfg.guess_relax_outside_deg,
        )
        return dataclasses.replace(c, memory_rgb=rgb[None])

    @torch.no_grad()
    def _generate(
        self,
        world: WorldState,
        cams: torch.Tensor,
        K: torch.Tensor,
        keep: int | None = None,
        remember: bool = True,
        where: str = "chunk",
        own_depth: bool = False,
    ) -> Chunk:
        """One chunk of ``world``: build the model's inputs from its memories, denoise, and
        (unless ``remember`` is False) put the new frames into the memories. Output with NaN or
        infinite values raises ``RuntimeError`` beginning with ``where``, before any memory
        is touched. ``own_depth``: the model's depth throughout, whatever ``generated_depth``
        says (the chunk that gives a start image the model's depth)."""
        T = cams.shape[0]
        keep = T if keep is None else keep
        t0 = time.perf_counter()
        conditioning = self.model_inputs(cams, K, world)
        mem_rgb, mem_depth, mem_mask = (
            conditioning.memory_rgb[0],
            conditioning.memory_depth[0],
            conditioning.memory_mask[0],
        )
        t1 = time.perf_counter()
        rgb, depth = self.sampler.generate(conditioning, generator=world.generator)
        rgb, depth = rgb[0, :keep], depth[0, :keep]
        t2 = time.perf_counter()
        first = world.frame_count
        check_output(rgb, depth, first, where)
        rgb = rgb.clamp(0, 1)
        observed = conditioning.memory_observed[0, :keep]
        if self.generated_depth != "model" and not own_depth:
            layout = self._layout(world) if self.generated_depth == "room" else None
            room = (
                None if layout is None else layout.seen_depth(cams[:keep], K[:keep], rgb.shape[-1])
            )
            depth = self._depth_where_unobserved(rgb, depth, observed, room)
        shown = rgb
        if self.detail_net is not None and not own_depth:
            unobserved = (observed <= 0.5).to(rgb.dtype)
            points = unproject_depth(depth[:, 0], cams[:keep], K[:keep])  # (T, S, S, 3)
            noise = self.detail_net.surface_noise(points, world.seed)
            shown = self.detail_net(rgb, unobserved, noise)
            check_output(shown, depth, first, f"{where}: the detail net")
        texture = self._texture(world) if self._builds_texture and not own_depth else None
        if texture is not None:
            unobserved = without_cracks((observed <= 0.5).to(rgb.dtype))
            # at the frame's own points (on the render's splatted depth of a stored guess, its
            # rough normals scatter the texture)
            points = unproject_depth(depth[:, 0], cams[:keep], K[:keep])  # (T, S, S, 3)
            if self._lays_texture:
                # the surface the room shows: a floor or ceiling whatever the guessed
                # depth's normals say, a wall where they say wall too (texture._reads), read
                # where the ray meets the room's wall (texture_points)
                layout = self._layout(world)
                expected = None
                if layout is not None:
                    points, expected = layout.texture_points(points, cams[:keep], K[:keep])
                band = texture.band(points, cams[:keep], self.texture_gains, expected)
                shown = shown + unobserved * band.to(rgb.device, rgb.dtype)
            if self.pattern_detail:  # where memory passed observed samples (and their cracks)
                # at the samples' own points where the render held one (the model's depth
                # there is its guess of theirs), the frame's own elsewhere
                held = mem_mask[:keep, 0] > 0.5
                at = torch.where(held, mem_depth[:keep, 0].to(depth), depth[:, 0])
                points = unproject_depth(at, cams[:keep], K[:keep])
                shown_q = world.spatial.shown_quality(cams[:keep], K[:keep], *rgb.shape[-2:])
                detail = texture.detail(points, cams[:keep], K[:keep], shown_q)
                shown = shown + (1 - unobserved) * detail.to(rgb.device, rgb.dtype)
            shown = shown.clamp(0, 1)
            check_output(shown, depth, first, f"{where}: the laid texture")
        if remember:
            self._remember(world, rgb, depth, cams[:keep], K[:keep], observed=False)
        t3 = time.perf_counter()
        return Chunk(
            rgb=shown,
            depth=depth,
            c2w=cams[:keep],
            K=K[:keep],
            memory_rgb=mem_rgb[:keep],
            memory_depth=mem_depth[:keep],
            memory_mask=mem_mask[:keep],
            frame_index=torch.arange(first, first + keep),
            timing={"memory_s": (t1 - t0) + (t3 - t2), "model_s": t2 - t1},
        )

    @property
    def texture_gains(self) -> dict[int, float]:
        """The laid texture's gain on each kind of surface (``texture.SURFACE_KINDS``):
        ``texture_gain``, the walls ``wall_texture_gain`` when it is set."""
        gains = dict.fromkeys(SURFACE_KINDS, self.texture_gain)
        if self.wall_texture_gain is not None:
            gains[WALL] = self.wall_texture_gain
        return gains

    @property
    def _lays_texture(self) -> bool:
        """Whether any kind of surface takes the observed texture (a gain above 0)."""
        return any(g > 0 for g in self.texture_gains.values())

    @property
    def _builds_texture(self) -> bool:
        """Whether the observed frames' texture is needed: laid, or its pattern's detail."""
        return self._lays_texture or self.pattern_detail

    def _texture(self, world: WorldState) -> ExemplarTexture | None:
        """The texture of ``world``'s kept observed frames (``_from_observed``)."""
        return self._from_observed(
            world, "texture", partial(ExemplarTexture.from_frames, whole=self.pattern_whole)
        )

    def observe(
        self,
        rgb: torch.Tensor,
        depth: torch.Tensor,
        c2w: torch.Tensor,
        K: torch.Tensor | None = None,
        world: WorldState | None = None,
    ) -> None:
        """Put known frames (e.g. ground truth) into all memories of ``world`` (default: the
        current one) as observed frames (the spatial memory keeps them over anything
        generated); the current pose becomes the last frame's.

        rgb ``(N, 3, S, S)`` in [0, 1], depth ``(N, 1, S, S)`` metres (0 where unknown),
        c2w ``(N, 4, 4)``, K ``(N, 3, 3)`` at the model's image size S (default: the pipeline's).
        """
        # Everything is checked before the world is touched: a refused call changes nothing.
        world = self._world(world)
        S = self.size
        if not isinstance(rgb, torch.Tensor) or rgb.ndim != 4 or tuple(rgb.shape[1:]) != (3, S, S):
            raise ValueError(f"rgb: expected (N, 3, {S}, {S}), got {describe(rgb)}")
        n = len(rgb)
        if not 1 <= n <= MAX_TRAJECTORY_FRAMES:
            raise ValueError(f"rgb: expected 1 to {MAX_TRAJECTORY_FRAMES} frames, got {n}")
        if not isinstance(depth, torch.Tensor) or tuple(depth.shape) != (n, 1, S, S):
            raise ValueError(f"depth: expected ({n}, 1, {S}, {S}), got {describe(depth)}")
        if not isinstance(c2w, torch.Tensor) or tuple(c2w.shape) != (n, 4, 4):
            raise ValueError(f"c2w: expected ({n}, 4, 4), got {describe(c2w)}")
        rgb = finite_float32(rgb, "rgb").to(self.device).clamp(0, 1)
        depth = finite_float32(depth, "depth", non_negative=True).to(self.device)
        c2w = self._check_poses(c2w, "c2w")
        if K is not None:
            K = self._check_intrinsics(K, n)
        self._remember(world, rgb, depth, c2w, K, observed=True)

    def _remember(
        self,
        world: WorldState,
        rgb: torch.Tensor,
        depth: torch.Tensor,
        c2w: torch.Tensor,
        K: torch.Tensor | None = None,
        *,
        observed: bool,
    ) -> None:
        """Put frames (N, 3, H, W), (N, 1, H, W), (N, 4, 4), K (N, 3, 3) into all memories
        of ``world``.
        ``observed``: real frames (a start image, ``observe``) or generated ones; a generated
        frame never replaces what the spatial memory observed."""
        n = len(rgb)
        K = self.K.expand(n, 3, 3) if K is None else K
        first = world.frame_count
        world.working.push(rgb, depth, c2w, K, step=first)
        for i in range(n):
            world.episodic.maybe_add(rgb[i], depth[i], c2w[i], K[i], step=first + i)
        world.spatial.insert(rgb, depth, c2w, K, step=first + n - 1, observed=observed)
        world.frame_count += n
        world.c2w = c2w[-1].clone()

    # -- pause and resume -------------------------------------------------------------------

    def save_state(self, path: str | Path, world: WorldState | None = None) -> Path:
        """Write the state of ``world`` (default: the current one: memories, pose, random
        state, prompt) to ``path``; ``load_state`` then continues exactly as if the world had
        not stopped.

        The file (``torch.load(weights_only=True)``) holds the format version, the sha256 of
        the payload and the payload: the serialized state, tensors and plain values only. It
        is written to a temporary file next to ``path`` and renamed over it when complete, so
        an interrupted save leaves the previous file as it was."""
        path = state_path(path)
        world = self._world(world)
        return write_state_file(path, world.state_dict())

    def load_state(self, path: str | Path, world: WorldState | None = None) -> None:
        """Restore a state written by ``save_state`` into ``world`` (default: the current
        one). The file is checked in full (format version, checksum, then
        ``WorldState.load_state_dict``: keys, shapes, finite values) and the memories are
        rebuilt aside; only then is the world replaced, so a refused file leaves the world as
        it was. Raises ``FileNotFoundError`` or ``ValueError`` naming the file and the bad
        key."""
        path = state_path(path)
        world = self._world(world)
        state = read_state_file(path)
        try:
            world.load_state_dict(state)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
