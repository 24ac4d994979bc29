"""Camera trajectories: the ``Trajectory`` container and its JSON file (``container.py``),
RealEstate10K camera files (``realestate10k.py``), a compact text language (``language.py``,
which holds its grammar), and every kind of path that comes back to where it started, with
ready-made trajectories of them (``revisit_paths.py``)."""

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
    arc,
    ellipse_loop,
    look_along,
    look_around_and_return,
    look_up_down,
    loop,
    orbit,
    orbit_circle,
    out_and_back,
    pan_and_step,
    periodic_path,
    retrace,
    retrace_budget,
    strafe,
    turn_in_place,
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
    "arc",
    "retrace",
    "retrace_budget",
    "ellipse_loop",
    "orbit_circle",
    "pan_and_step",
    "look_along",
    "periodic_path",
    "turn_in_place",
    "strafe",
    "look_up_down",
]
