"""Camera trajectories: the ``Trajectory`` container and its JSON file (``container.py``),
RealEstate10K camera files (``realestate10k.py``), a compact text language (``language.py``,
which holds its grammar), and ready-made trajectories that come back to where they started
(``revisit_paths.py``)."""

from worldmem.geometry.trajectory.container import MAX_TRAJECTORY_FRAMES, Trajectory
from worldmem.geometry.trajectory.language import (
    MAX_STEP_FRAMES,
    STEP_NAMES,
    TrajectoryStep,
    format_trajectory,
    parse_trajectory,
    trajectory_from_text,
)
from worldmem.geometry.trajectory.realestate10k import (
    load_realestate10k,
    realestate10k_camera_lines,
    save_realestate10k,
)
from worldmem.geometry.trajectory.revisit_paths import (
    REVISIT_TRAJECTORIES,
    look_around_and_return,
    loop,
    orbit,
    out_and_back,
)

__all__ = [
    "Trajectory",
    "load_realestate10k",
    "realestate10k_camera_lines",
    "save_realestate10k",
    "TrajectoryStep",
    "STEP_NAMES",
    "MAX_STEP_FRAMES",
    "MAX_TRAJECTORY_FRAMES",
    "parse_trajectory",
    "format_trajectory",
    "trajectory_from_text",
    "out_and_back",
    "loop",
    "look_around_and_return",
    "orbit",
    "REVISIT_TRAJECTORIES",
]
