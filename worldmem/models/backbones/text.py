"""The T5 text encoder of a backbone, loaded from a local folder, with each pipeline's padding.

Wan (UMT5-XXL) and CogVideoX (T5-XXL) were trained on T5 encoder states padded to a fixed
length, but differently:

* ``zeros`` (Wan): states of the real tokens, then zero vectors up to ``max_tokens`` (512);
* ``tokens`` (CogVideoX): the encoder's states of the whole padded sequence (226 tokens).

The encoder is frozen and held outside the module tree (it is neither saved with the world
model nor copied with it); states are cached per caption on the CPU in a bounded LRU cache.
An empty caption is encoded like any other: the backbones' unconditional input is the T5
encoding of "".
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor

from worldmem.models.text import TextStates

__all__ = ["T5TextEncoder", "PADDINGS"]

PADDINGS = ("zeros", "tokens")


def _locate(path: Path) -> tuple[Path, Path]:
    """(encoder folder, tokenizer folder) for a pipeline root, an encoder folder with the
    tokenizer inside, or an encoder folder with a sibling ``tokenizer/``."""
    if (path / "text_encoder" / "config.json").is_file():
        return path / "text_encoder", path / "tokenizer"
    if not (path / "config.json").is_file():
        raise ValueError(
            f"T5TextEncoder: {path} holds no text encoder (no config.json, no "
            "text_encoder/config.json); point text_encoder_path at the backbone's pipeline "
            "folder or its text_encoder folder"
        )
    if (path / "tokenizer_config.json").is_file():
        return path, path
    return path, path.parent / "tokenizer"


class T5TextEncoder:
    """captions -> ``TextStates (B, max_tokens, width)`` in a backbone's convention.

    path: local folder (see ``_locate``); max_tokens: the padded length; padding: "zeros" or
    "tokens" (module docstring); cache_size: captions kept.
    """

    def __init__(
        self, path: str | Path, max_tokens: int, padding: str, cache_size: int = 512
    ) -> None:
        if padding not in PADDINGS:
            raise ValueError(f"T5TextEncoder: padding '{padding}' is not one of {PADDINGS}")
        if max_tokens < 1:
            raise ValueError(f"T5TextEncoder: max_tokens must be >= 1, got {max_tokens}")
        self.encoder_path, self.tokenizer_path = _locate(Path(path))
        self.max_tokens = int(max_tokens)
        self.padding = padding
        self.cache_size = int(cache_size)
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(self.encoder_path, local_files_only=True)
        self.width = int(getattr(config, "d_model", None) or config.hidden_size)
        self._loaded: tuple | None = None
        self._cache: OrderedDict[str, Tensor] = OrderedDict()

    def __deepcopy__(self, memo: dict) -> T5TextEncoder:
        return self  # frozen and stateless apart from its cache: copies of a model share it

    def _load(self):
        if self._loaded is None:
            import transformers
            from transformers import AutoConfig, AutoTokenizer

            config = AutoConfig.from_pretrained(self.encoder_path, local_files_only=True)
            encoder_only = {
                "t5": transformers.T5EncoderModel,
                "umt5": transformers.UMT5EncoderModel,
                "mt5": transformers.MT5EncoderModel,
            }
            cls = encoder_only.get(config.model_type, transformers.AutoModel)
            # dtype "auto": the checkpoint's own (bf16 for both backbones' T5)
            model = cls.from_pretrained(self.encoder_path, local_files_only=True, dtype="auto")
            if getattr(model.config, "is_encoder_decoder", False):
                model = model.get_encoder()
            tok = AutoTokenizer.from_pretrained(self.tokenizer_path, local_files_only=True)
            self._loaded = (tok, model.requires_grad_(False).eval())
        return self._loaded

    @torch.no_grad()
    def _encode_one(self, caption: str, device: torch.device) -> Tensor:
        """One caption -> states ``(L, width)`` on the CPU (L = real tokens for "zeros",
        max_tokens for "tokens")."""
        if caption in self._cache:
            self._cache.move_to_end(caption)
            return self._cache[caption]
        tok, model = self._load()
        if next(model.parameters()).device != device:
            model.to(device)
        enc = tok(
            [caption],
            padding="max_length",
            max_length=self.max_tokens,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        if self.padding == "zeros":
            states = model(input_ids=ids, attention_mask=mask).last_hidden_state[0]
            states = states[: int(mask.sum())]
        else:
            states = model(input_ids=ids).last_hidden_state[0]
        states = states.cpu()
        self._cache[caption] = states
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return states

    def __call__(self, captions: list[str], device: torch.device | str = "cpu") -> TextStates:
        """captions (B strings) -> ``TextStates`` states ``(B, max_tokens, width)`` float32 on
        ``device``; mask marks the real tokens (the backbones themselves take no mask)."""
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise ValueError(f"T5TextEncoder: want a list of str, got {type(captions).__name__}")
        device = torch.device(device)
        rows = [self._encode_one(c, device) for c in captions]
        states = torch.zeros(len(rows), self.max_tokens, self.width)
        mask = torch.zeros(len(rows), self.max_tokens, dtype=torch.bool)
        for i, r in enumerate(rows):
            states[i, : r.shape[0]] = r.float()
            mask[i, : r.shape[0]] = True
        return TextStates(states.to(device), mask.to(device))
