"""The layers of ``WorldDiT``: the convolutional stem (pixels to one token per patch, with
skips), the transformer block (adaLN-Zero modulation, block-causal self-attention over frames,
cross-attention to text), the final layer and the convolutional U-Net decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvStem", "ConvDecoder", "DiTBlock", "FinalLayer"]


class ConvStem(nn.Module):
    """Frame pixels ``(N, Cin, H, W)`` -> tokens ``(N, D, H / 2^L, W / 2^L)`` and the feature
    map of every level (the decoder's skip connections), L = len(widths) stride-2 steps."""

    def __init__(self, in_ch: int, widths: tuple[int, ...], hidden: int):
        super().__init__()
        self.inp = nn.Conv2d(in_ch, widths[0], 3, padding=1)
        self.levels = nn.ModuleList()
        for i, w in enumerate(widths):
            nxt = widths[i + 1] if i + 1 < len(widths) else hidden
            self.levels.append(
                nn.ModuleDict(
                    {
                        "conv": nn.Conv2d(w, w, 3, padding=1),
                        "down": nn.Conv2d(w, nxt, 4, stride=2, padding=1),
                    }
                )
            )

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        h = F.gelu(self.inp(x))
        skips = []
        for lvl in self.levels:
            h = h + F.gelu(lvl["conv"](h))
            skips.append(h)
            h = lvl["down"](h)
        return h, skips


class ConvDecoder(nn.Module):
    """Tokens ``(N, D, h, w)`` + the stem's skips + per-frame conditioning ``(N, D)`` ->
    ``(N, out_ch, H, W)`` (upsample, concatenate the skip, convolve; finest level last)."""

    def __init__(self, hidden: int, widths: tuple[int, ...], out_ch: int):
        super().__init__()
        self.levels = nn.ModuleList()
        prev = hidden
        for w in reversed(widths):
            self.levels.append(
                nn.ModuleDict(
                    {
                        "up": nn.Conv2d(prev, w, 3, padding=1),
                        "fuse": nn.Conv2d(2 * w, w, 3, padding=1),
                        "conv": nn.Conv2d(w, w, 3, padding=1),
                        "cond": nn.Linear(hidden, 2 * w),
                    }
                )
            )
            prev = w
        self.out = nn.Conv2d(widths[0], out_ch, 3, padding=1)

    def forward(self, h: Tensor, skips: list[Tensor], cond: Tensor) -> Tensor:
        for lvl, skip in zip(self.levels, reversed(skips)):
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = F.gelu(lvl["up"](h))
            h = F.gelu(lvl["fuse"](torch.cat([h, skip], 1)))
            scale, shift = lvl["cond"](cond).chunk(2, -1)  # (N, w) each
            h = h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
            h = h + F.gelu(lvl["conv"](h))
        return self.out(h)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    # x (B, F, n, D); shift, scale (B, F, D): each frame's tokens get that frame's modulation
    return x * (1 + scale[:, :, None]) + shift[:, :, None]


class DiTBlock(nn.Module):
    """Self-attention (block-causal), text cross-attention, MLP; adaLN-Zero on sigma."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden, eps=1e-6)
        self.cross_q = nn.Linear(hidden, hidden)
        self.cross_kv = nn.Linear(hidden, 2 * hidden)
        self.cross_proj = nn.Linear(hidden, hidden)
        self.norm3 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        mlp_hidden = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, mlp_hidden),
            nn.GELU(approximate="tanh"),
            nn.Linear(mlp_hidden, hidden),
        )
        # per-block offset added to the shared sigma modulation (adaLN-single, PixArt-alpha)
        self.mod_table = nn.Parameter(torch.zeros(6, hidden))

    def forward(
        self,
        x: Tensor,
        mod: Tensor,
        attn_mask: Tensor,
        text: Tensor,
        text_mask: Tensor,
        prefix_k: Tensor | None = None,
        prefix_v: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """x ``(B, F, n, D)``, mod ``(B, F, 6, D)``, attn_mask ``(B, 1, F n, Lp + F n)`` bool,
        text ``(B, Lt, D)``, text_mask ``(B, Lt)``, prefix k/v ``(B, heads, Lp, hd)`` ->
        (x ``(B, F, n, D)``, this block's own k, v ``(B, heads, F n, hd)``)."""
        B, Fr, n, D = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = (mod + self.mod_table).unbind(2)
        # 1. self-attention
        q, k, v = self._qkv(x, shift1, scale1)
        q = self.q_norm(q).transpose(1, 2)  # (B, h, L, hd)
        k_all = k if prefix_k is None else torch.cat([prefix_k, k], 2)
        v_all = v if prefix_v is None else torch.cat([prefix_v, v], 2)
        a = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=attn_mask)
        a = self.proj(a.transpose(1, 2).reshape(B, Fr, n, D))
        x = x + gate1[:, :, None] * a
        # 2. text cross-attention
        hq = self.cross_q(self.norm2(x)).view(B, Fr * n, self.heads, self.head_dim).transpose(1, 2)
        tk, tv = self.cross_kv(text).view(B, -1, 2, self.heads, self.head_dim).unbind(2)
        c = F.scaled_dot_product_attention(
            hq, tk.transpose(1, 2), tv.transpose(1, 2), attn_mask=text_mask[:, None, None, :]
        )
        x = x + self.cross_proj(c.transpose(1, 2).reshape(B, Fr, n, D))
        # 3. MLP
        x = x + gate2[:, :, None] * self.mlp(_modulate(self.norm3(x), shift2, scale2))
        return x, k, v

    def keys_values(self, x: Tensor, mod: Tensor) -> tuple[Tensor, Tensor]:
        """This block's own k, v ``(B, heads, F n, hd)`` of x ``(B, F, n, D)`` with mod ``(B,
        F, 6, D)``: what ``forward`` returns beside x, without the attention and MLP that only
        x needs (the last block of a KV cache's frames, whose x nothing reads)."""
        shift1, scale1 = (mod[:, :, :2] + self.mod_table[:2]).unbind(2)
        _, k, v = self._qkv(x, shift1, scale1)
        return k, v

    def _qkv(self, x: Tensor, shift: Tensor, scale: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q ``(B, F n, heads, hd)`` before its norm, k (normed) and v ``(B, heads, F n, hd)``."""
        B, Fr, n, D = x.shape
        h = _modulate(self.norm1(x), shift, scale).reshape(B, Fr * n, D)
        q, k, v = self.qkv(h).view(B, Fr * n, 3, self.heads, self.head_dim).unbind(2)
        return q, self.k_norm(k).transpose(1, 2), v.transpose(1, 2)


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm and a linear map to patch pixels (both zero-initialised)."""

    def __init__(self, hidden: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.linear = nn.Linear(hidden, out_dim)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        shift, scale = self.ada(cond).chunk(2, -1)  # (B, F, D) each
        return self.linear(_modulate(self.norm(x), shift, scale))
