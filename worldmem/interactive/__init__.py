"""Interactive exploration: ``Session`` (a world you step with keys, no UI needed) and the
web server that streams it to a page (``python sample.py --interactive`` or
``worldmem explore``)."""

from worldmem.interactive.session import Frame, Pose, Session, fork_pipeline

__all__ = ["Frame", "Pose", "Session", "fork_pipeline"]
