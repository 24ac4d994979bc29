"""WorldState: one world apart from the model that generates it.

A world is its three memories, the current and start camera poses, the random generator the
sampler draws noise from, the frame count, the prompt, the memory mode and the seed. A
``WorldPipeline`` (the model, codec and sampler) steps a world; any number of worlds can be
stepped by one pipeline. ``state_dict`` / ``load_state_dict`` give and take a world as
tensors and plain values (what a world state file holds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from worldmem.config import MemoryConfig
from worldmem.data.inputs import MEMORY_MODE_GIVES, memories_for_mode
from worldmem.geometry import check_c2w
from worldmem.memory import EpisodicMemory, SpatialMemory, WorkingMemory
from worldmem.memory.voxel_index import GRID_HALF_VOXELS as _GRID_HALF_VOXELS
from worldmem.text_check import check_text

__all__ = ["WorldState", "STATE_KEYS", "MAX_SEED", "check_poses", "check_seed"]

MAX_SEED = 2**64 - 1  # torch generators take seeds in [0, 2**64)
MAX_FRAME_COUNT = 2**63 - 1  # frame indices are int64 tensors
# The keys of a world's state dict (and of the payload of a world state file)
STATE_KEYS = frozenset(
    {
        "spatial",
        "episodic",
        "working",
        "c2w",
        "start_c2w",
        "rng",
        "prompt",
        "memory_mode",
        "frame_count",
        "seed",
    }
)


@dataclass(eq=False)
class WorldState:
    """One world, built for a memory config on a device (``WorldState.new``).

    spatial, episodic, working: the memories. generator: the CPU generator the sampler draws
    the initial noise from. c2w ``(4, 4)``: the current camera; start_c2w ``(4, 4)``: the
    camera the world started at. frame_count: frames put into the memories since the start.
    prompt: the caption. memory_mode: what the model is given (``MEMORY_MODE_GIVES``).
    seed: the generator's starting seed. began_from: for a world begun from a prompt alone,
    what its first frame is (``WorldPipeline.first_frame_for``'s description), else None; not
    part of a saved state.
    """

    memory_cfg: MemoryConfig
    device: torch.device
    spatial: SpatialMemory
    episodic: EpisodicMemory
    working: WorkingMemory
    generator: torch.Generator
    c2w: torch.Tensor
    start_c2w: torch.Tensor
    prompt: str = ""
    memory_mode: str = "all"
    frame_count: int = 0
    seed: int = 0
    began_from: dict | None = None

    @classmethod
    def new(
        cls,
        memory_cfg: MemoryConfig,
        device: str | torch.device = "cpu",
        seed: int = 0,
        prompt: str = "",
        memory: str = "all",
    ) -> WorldState:
        """An empty world: empty memories, the camera at the identity pose, the generator
        seeded with ``seed``."""
        check_seed(seed)
        memories_for_mode(memory)
        check_text(prompt, "prompt")
        device = torch.device(device)
        c2w = torch.eye(4, device=device)
        return cls(
            memory_cfg=memory_cfg,
            device=device,
            spatial=SpatialMemory(memory_cfg, device=device),
            episodic=EpisodicMemory(memory_cfg, device=device),
            working=WorkingMemory(memory_cfg.working_frames),
            generator=torch.Generator(device="cpu").manual_seed(seed),
            c2w=c2w,
            start_c2w=c2w.clone(),
            prompt=prompt,
            memory_mode=memory,
            seed=seed,
        )

    def state_dict(self) -> dict:
        """The world as copies (``STATE_KEYS``): the memories' state dicts, the poses, the
        random state and the plain values."""
        return {
            "spatial": self.spatial.state_dict(),
            "episodic": self.episodic.state_dict(),
            "working": self.working.state_dict(),
            "c2w": self.c2w.clone(),
            "start_c2w": self.start_c2w.clone(),
            "rng": self.generator.get_state(),
            "prompt": self.prompt,
            "memory_mode": self.memory_mode,
            "frame_count": self.frame_count,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict) -> None:
        """Become the world ``state`` (a ``state_dict``, on any device). It is checked in
        full (keys, shapes, finite values, poses inside the spatial memory's grid) and the
        memories are rebuilt aside; only then is this world replaced, so a refused state
        leaves it as it was. ``ValueError`` names the bad key."""
        if not isinstance(state, dict):
            raise ValueError(f"state: expected a dict, got {type(state).__name__}")
        _exact_keys(state, STATE_KEYS, "")
        _check_finite(state, "")
        for key in ("spatial", "episodic", "working"):
            if not isinstance(state[key], dict):
                raise ValueError(f"'{key}' must be a dict")
            rgb = state[key].get("rgb")  # colours the model is given back: in [0, 1]
            if (
                isinstance(rgb, torch.Tensor)
                and rgb.numel()
                and not 0 <= rgb.min() <= rgb.max() <= 1
            ):
                raise ValueError(f"'{key}.rgb' has colours outside [0, 1]")
        for key in ("c2w", "start_c2w"):
            if not isinstance(state[key], torch.Tensor) or tuple(state[key].shape) != (4, 4):
                raise ValueError(f"'{key}' must be a (4, 4) tensor")
            try:
                check_poses(state[key][None], self.memory_cfg, key)
            except ValueError as e:
                raise ValueError(f"'{key}': {e}") from None
        rng = state["rng"]
        want_rng = self.generator.get_state()
        if (
            not isinstance(rng, torch.Tensor)
            or rng.dtype != torch.uint8
            or rng.shape != want_rng.shape
        ):
            raise ValueError(f"'rng' must be a uint8 tensor of shape {tuple(want_rng.shape)}")
        try:
            check_text(state["prompt"], "prompt")
        except ValueError as e:
            raise ValueError(f"'prompt': {e}") from None
        if (
            not isinstance(state["memory_mode"], str)
            or state["memory_mode"] not in MEMORY_MODE_GIVES
        ):
            raise ValueError(
                f"'memory_mode' {state['memory_mode']!r} is not one of "
                f"{', '.join(MEMORY_MODE_GIVES)}"
            )
        fc = state["frame_count"]
        if isinstance(fc, bool) or not isinstance(fc, int) or not 0 <= fc <= MAX_FRAME_COUNT:
            raise ValueError(f"'frame_count' must be an int in [0, 2**63), got {fc!r}")
        try:
            check_seed(state["seed"])
        except ValueError as e:
            raise ValueError(f"'seed': {e}") from None
        # Rebuild the memories aside; the world is replaced only when all of them loaded.
        new = WorldState.new(self.memory_cfg, self.device)
        for key in ("spatial", "episodic", "working"):
            memory = getattr(new, key)
            _exact_keys(state[key], set(memory.state_dict()), f"{key}.")
            try:
                memory.load_state_dict(_to_device(state[key], self.device))
            except (ValueError, TypeError, RuntimeError) as e:
                raise ValueError(f"'{key}': {e}") from None
        try:
            new.generator.set_state(rng)
        except RuntimeError as e:
            raise ValueError(f"'rng': {e}") from None
        new.c2w = state["c2w"].to(self.device, torch.float32)
        new.start_c2w = state["start_c2w"].to(self.device, torch.float32)
        new.prompt = state["prompt"]
        new.memory_mode = state["memory_mode"]
        new.frame_count = fc
        new.seed = state["seed"]
        self.become(new)

    def restore(self, state: dict) -> None:
        """Put back a ``state_dict`` of this same world, in place (the same memory objects).
        It came from this world, so it is not checked again (``load_state_dict`` checks)."""
        self.spatial.load_state_dict(state["spatial"])
        self.episodic.load_state_dict(state["episodic"])
        self.working.load_state_dict(state["working"])
        self.generator.set_state(state["rng"])
        self.c2w, self.start_c2w = state["c2w"], state["start_c2w"]
        self.prompt, self.memory_mode = state["prompt"], state["memory_mode"]
        self.frame_count, self.seed = state["frame_count"], state["seed"]

    def become(self, other: WorldState) -> None:
        """Take every part of ``other`` (its objects, not copies): whoever holds this world
        now holds ``other``'s."""
        for f in fields(self):
            setattr(self, f.name, getattr(other, f.name))


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed!r}")
    return seed


def check_poses(c2w: torch.Tensor, memory_cfg: MemoryConfig, name: str) -> torch.Tensor:
    """Rigid, finite in float32 and inside the spatial memory's voxel grid (with room for the
    farthest depth it inserts): ``(N, 4, 4)`` -> float32 (on the device it came on)."""
    if not isinstance(c2w, torch.Tensor) or not c2w.is_floating_point():
        got = tuple(c2w.shape) if isinstance(c2w, torch.Tensor) else type(c2w).__name__
        raise ValueError(f"{name}: expected a float tensor of poses, got {got}")
    c2w = c2w.to(torch.float32)
    check_c2w(c2w, name)
    reach_m = _GRID_HALF_VOXELS * memory_cfg.voxel_size_m - memory_cfg.max_depth_m
    far = c2w[:, :3, 3].abs().amax(1) > reach_m
    if bool(far.any()):
        i = int(far.nonzero()[0])
        raise ValueError(
            f"{name}: pose {i} is at {c2w[i, :3, 3].tolist()}, outside the spatial memory's "
            f"grid (|x|, |y|, |z| <= {reach_m:.0f} m at voxel_size_m={memory_cfg.voxel_size_m})"
        )
    return c2w


def _exact_keys(d: dict, want: set | frozenset, where: str) -> None:
    """``d`` has exactly the keys ``want``; else a ``ValueError`` naming the missing and the
    unknown ones (prefixed with ``where``)."""
    missing = sorted(map(str, set(want) - set(d)))
    unknown = sorted(map(str, set(d) - set(want)))
    parts = []
    if missing:
        parts.append("missing key(s) " + ", ".join(repr(where + k) for k in missing))
    if unknown:
        parts.append("unknown key(s) " + ", ".join(repr(where + k) for k in unknown))
    if parts:
        raise ValueError("; ".join(parts))


def _check_finite(value, where: str) -> None:
    """Every floating tensor and float in ``value`` (nested dicts and lists) is finite, the
    tensors in float32 (what the memories hold: a float64 1e39 would become infinite)."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}{k}." if isinstance(v, dict) else f"{where}{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")
    elif isinstance(value, torch.Tensor) and value.is_floating_point():
        if not bool(torch.isfinite(value.float()).all()):
            raise ValueError(f"'{where}' has NaN or infinite values (in float32)")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"'{where}' is {value}")


def _to_device(value, device):
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value.to(device) if isinstance(value, torch.Tensor) else value
