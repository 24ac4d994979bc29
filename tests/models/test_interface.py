"""WorldModel: WorldDiT and the backbone adapters offer it, with its signatures; dit.py still
exports the types that moved to models/interface.py."""

from __future__ import annotations

import inspect

import pytest
from conftest import tiny_model_config

from worldmem.models import WorldDiT, dit, interface
from worldmem.models.backbones import CogVideoXWorldModel, WanWorldModel
from worldmem.models.interface import WorldModel

MODELS = [WorldDiT, WanWorldModel, CogVideoXWorldModel]
# protocol method -> the method of an nn.Module that implements it
METHODS = {"__call__": "forward", "encode_context": "encode_context", "encode_text": "encode_text"}


def _mismatches(protocol_fn, fn) -> list[str]:
    """Why ``fn`` cannot be called as ``protocol_fn`` is (empty: it can). It must take every
    parameter of ``protocol_fn`` in the same place, of the same kind and with the same default,
    and give any further parameter a default."""
    want = list(inspect.signature(protocol_fn).parameters.values())[1:]  # without self
    got = list(inspect.signature(fn).parameters.values())[1:]
    bad = []
    for i, p in enumerate(want):
        q = got[i] if i < len(got) else None
        if q is None or (q.name, q.kind, q.default) != (p.name, p.kind, p.default):
            bad.append(f"{p} (got {q})")
    bad += [f"extra {q} has no default" for q in got[len(want) :] if q.default is q.empty]
    return bad


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_every_model_class_has_the_interfaces_signatures(cls):
    for name, impl in METHODS.items():
        bad = _mismatches(getattr(WorldModel, name), getattr(cls, impl))
        assert not bad, f"{cls.__name__}.{impl}: {bad}"


def test_the_signature_check_sees_a_renamed_reordered_or_required_argument():
    def renamed(self, target, context=None, keyframes=None, render=None, captions=None,
                text=None, cache=None):  # fmt: skip
        ...

    def reordered(self, keyframes, context, reference_c2w, captions=None, text=None): ...

    def optional_extra(self, context, keyframes, reference_c2w, captions=None, text=None,
                       return_dict=True):  # fmt: skip
        ...

    def required_extra(self, context, keyframes, reference_c2w, captions=None, text=None, *,
                       scale):  # fmt: skip
        ...

    assert _mismatches(WorldModel.__call__, renamed)
    assert _mismatches(WorldModel.encode_context, reordered)
    assert not _mismatches(WorldModel.encode_context, optional_extra)
    assert _mismatches(WorldModel.encode_context, required_extra)


def test_world_dit_is_a_world_model():
    assert isinstance(WorldDiT.from_model_config(tiny_model_config()), WorldModel)
    assert not isinstance(object(), WorldModel)


def test_dit_still_exports_the_types_that_moved():
    assert dit.ModelFrames is interface.ModelFrames
    assert dit.ROLES is interface.ROLES
    assert dit.WorldDiTOutput is interface.WorldModelOutput
