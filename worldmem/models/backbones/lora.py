"""LoRA on a backbone's attention projections (through peft) and the trainable-parameter modes.

Modes (``TRAINABLE_MODES``):

* ``adapter``: only the layers the world model adds (zero-initialised inputs, camera and
  frame embeddings, depth head); the backbone is frozen.
* ``lora``: the added layers and rank-r factors ``B A`` on the q, k, v and output projections
  of every attention module (``B`` starts at zero, so the model is unchanged at first).
* ``full``: every parameter.

Targets are found by module type (the attention classes each backbone names), and LoRA
parameters are collected from peft's ``LoraLayer`` modules: no parameter-name matching.
"""

from __future__ import annotations

from torch import nn

__all__ = ["TRAINABLE_MODES", "attention_projections", "add_lora", "lora_parameters"]

TRAINABLE_MODES = ("adapter", "lora", "full")


def attention_projections(root: nn.Module, attention_types: tuple[type, ...]) -> list[str]:
    """Full names (relative to ``root``) of the ``to_q``, ``to_k``, ``to_v`` and ``to_out.0``
    linear layers of every module of one of ``attention_types``."""
    names = []
    for name, module in root.named_modules():
        if not isinstance(module, attention_types):
            continue
        for attr in ("to_q", "to_k", "to_v"):
            if isinstance(getattr(module, attr, None), nn.Linear):
                names.append(f"{name}.{attr}")
        out = getattr(module, "to_out", None)
        if isinstance(out, nn.ModuleList) and isinstance(out[0], nn.Linear):
            names.append(f"{name}.to_out.0")
    return names


def add_lora(backbone: nn.Module, targets: list[str], rank: int, alpha: float) -> None:
    """Insert LoRA factors (rank ``rank``, scale ``alpha / rank``) into the linear layers named
    ``targets`` of a diffusers model (``PeftAdapterMixin.add_adapter``)."""
    if not targets:
        raise ValueError(f"add_lora: no attention projections found in {type(backbone).__name__}")
    from peft import LoraConfig

    config = LoraConfig(
        r=int(rank), lora_alpha=float(alpha), target_modules=targets, init_lora_weights=True
    )
    backbone.add_adapter(config)


def lora_parameters(root: nn.Module) -> list[nn.Parameter]:
    """Every LoRA factor under ``root`` (peft ``LoraLayer`` modules); empty without LoRA."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # peft missing: no LoRA layers can exist
        return []
    params = []
    for module in root.modules():
        if isinstance(module, LoraLayer):
            params += list(module.lora_A.parameters()) + list(module.lora_B.parameters())
    return params
