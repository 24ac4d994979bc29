"""Periodic patterns on floors, ceilings and walls: the period and one tile, in the world's phase.

Floors, ceilings and walls are often tiled, checkered or bricked: a pattern that repeats along
the room's axes. Folding the observed samples of a plane (its coordinates u, v in metres, their
colours) modulo a candidate period (pu, pv) and measuring how much of the colour variance is
left within bins of phase (phase dispersion minimisation, as astronomers find the period of a
star from uneven samples) finds the period: a coarse search over a geometric grid of periods
on a subset of the samples, then a fine one around the best; the peak of the samples' power
at the lattice's first harmonics (a periodogram of uneven samples) then places it to a few
parts in a thousand, which is what keeps the pattern in phase metres away from where it was
seen. Along an axis the samples span few periods of, that peak is broad: periods less than
8% apart are taken square when a square period keeps nearly all of it (tiles and checkers
are square). The fold at that period, averaged, is one tile of the pattern in the world's
own phase (coordinates taken modulo the period, not from where the samples lie), so laid over
parts of the plane no frame saw it continues the pattern where the truth has it, not a mirror
image of some patch. Each sample is a pixel's average over its footprint on the plane, so that
mean fold is the pattern blurred by the samples' footprints; ``sharpen_tile`` then solves for
the tile whose averages over those footprints are the samples (the many samples at different
phases of one period resolve finer than any one of them, as multi-frame super-resolution does).

Periods up to 2 m are searched among the samples at most 0.15 m wide; where none is found,
periods of 2 to 4 m among those at most 0.5 m wide (a facade's bays and storeys, seen from
across a plaza), whose harmonics such wide pixels still resolve.

A fold that leaves more than ``MAX_DISPERSION`` of the variance is no pattern (paint, wood,
noise, or a pattern the frames' pixels are too coarse for): ``find_period`` gives None. Nor is
a fold that only describes the samples it was made of: a repeat means that what one period
shows, the next shows again, so the fold of the periods of one parity along each axis must
predict the samples of the others (``held_out_dispersion``). A period that the samples span
fewer than two of, or a fold that learnt one stretch of mottle or the floor's shading by heart,
fails that, however little variance it leaves. Nor is a fold whose bins of phase tell where
the samples lie (``located``): one frame's pixels on a plane seen square-on lie on a grid, and
at a period near a multiple of its step each bin gathers one stretch of the plane, a moire
that passes the held-out check because neighbours look alike. Nor, given the samples' pixel
footprints, is a period too few of them are narrow enough to resolve (``resolved``). A period
refused may be one axis misread where the samples span a period or two of it: the square of
either axis's period is tried then (at its own harmonics' peak, the smaller first), under the
same tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "SEARCHES",
    "PeriodicPattern",
    "box_weights",
    "dispersion",
    "find_period",
    "fold_tile",
    "harmonic_power",
    "held_out_dispersion",
    "located",
    "resolved",
    "sharpen_tile",
]

PERIOD_RANGE_M = (0.1, 2.0)  # periods searched (``find_period``'s default)
COARSE_STEPS = 70  # geometric steps over PERIOD_RANGE_M per axis (4.4% apart; as dense elsewhere)
COARSE_SAMPLES = 300  # samples the coarse search uses (evenly taken)
FINE_SPAN = 0.03  # the fine search: +-3% around the coarse best ...
FINE_STEPS = 31  # ... in this many steps per axis (0.2% apart)
PHASE_BINS = 8  # bins of phase per axis
PEAK_SPANS = (0.08, 0.008)  # the harmonics' peak: +-8%, then +-0.8% around the best ...
PEAK_STEPS = 41  # ... in this many steps per axis
# periods less than 8% apart whose square period's harmonics keep 97% of the peak's power:
# the square one (tiles and checkers are square; the peak is broad along an axis the samples
# span few periods of)
SQUARE_SPAN, SQUARE_POWER = 0.08, 0.03
# the first harmonics of a 2-D lattice: along each axis, both diagonals, and twice each axis
HARMONICS = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2))
MAX_DISPERSION = 0.6  # a fold leaving more of the colour variance than this is no pattern
# nor one whose periods of one parity predict the others' samples no better than this (1: no
# better than their mean colour)
MAX_HELD_OUT = 0.9
MIN_HELD_OUT_SHARE = 0.1  # each parity must hold at least this share of the samples
# nor one whose bins of phase locate the samples: less than this of their positions' variance
# along either axis left within the bins (a moire of the pixel grid; held-out worlds' start
# frames, benchmarks/periods.py: every right period left 0.58 or more, the false ones on
# mottled walls 0.33-0.39)
MIN_POSITION_DISPERSION = 0.5
# nor one fewer than MIN_SAMPLES samples resolve: a pixel footprint at most this share of the
# larger period (Nyquist: two samples a period)
MAX_FOOTPRINT_SHARE = 0.5
# a period refused: try the square of either axis's period
SQUARE_WHEN_REFUSED = True
NEAR_BEST = 0.02  # periods within this of the least dispersion count as found: the smallest wins
# ... of those the least's period is a whole multiple of, to within this (the coarse grid's
# steps are 4.4% apart)
MULTIPLE_TOL = 0.06
SUBPERIOD_SLACK = 0.02  # a period / n folding within this of the period's dispersion wins
MIN_SAMPLES = 200  # fewer samples of a plane: no search
MAX_SEARCH_SAMPLES = 4000  # more are taken evenly for the search (the fold takes them all)
TEXEL_M = 0.02  # the tile's pixels are about this size ...
TILE_PX = (8, 64)  # ... with this many a side at least and at most
FOLD_SIGMA_PX = 0.5  # the fold's Gaussian, in tile pixels
# sharpen_tile: the weight of the tile's smoothness against fitting the samples, per sample
# per tile pixel (held-out worlds' patterns laid on their true frames, benchmarks/
# pattern_truth.py: +0.28 dB over the mean fold at 0.1, +0.24 at 0.02 and +0.20 at 0.3; less
# smoothing adds detail the truth does not have), and the conjugate-gradient iterations it
# takes at most (the held-out worlds' planes settle to 1e-4 within 40)
SHARPEN_SMOOTHING = 0.1
SHARPEN_ITERATIONS = 60
MAX_SAMPLE_FOOTPRINT_M = 0.15  # samples blurred over more than this carry no pattern ...
# ... of periods up to PERIOD_RANGE_M[1]. When none is found there, periods of LARGE_PERIOD_RANGE_M
# are searched among the samples at most LARGE_SAMPLE_FOOTPRINT_M wide: a facade's bays and
# storeys (2-4 m), which the frames see from across a plaza (benchmarks/periods.py, the start
# frames of held-out worlds 100000-100039: 21 more facades right, 7 found 2-8% off, and one
# checkered wall at 3.92 times its period; no floor or ceiling changes)
LARGE_PERIOD_RANGE_M = (2.0, 4.0)
LARGE_SAMPLE_FOOTPRINT_M = 0.5
# the searches a plane's samples go through, in turn until one finds a period: (the periods
# searched, the widest sample it takes)
SEARCHES = (
    (PERIOD_RANGE_M, MAX_SAMPLE_FOOTPRINT_M),
    (LARGE_PERIOD_RANGE_M, LARGE_SAMPLE_FOOTPRINT_M),
)


@dataclass
class PeriodicPattern:
    """A plane's pattern: ``period`` (pu, pv) metres, ``tile (3, nv, nu)`` one period of it
    (pixel (i, j) the mean colour at phase ((j + 1/2) / nu, (i + 1/2) / nv)) and the colour
    variance the fold leaves (``dispersion``, 0: a perfect pattern)."""

    period: tuple[float, float]
    tile: Tensor
    dispersion: float

    def to_px(self) -> Tensor:
        """``(2, 3)``: the tile pixel (column, row) of plane point (u, v) metres is
        to_px @ (u, v, 1), pixel centres at whole numbers (as ``texture.wrap_sample`` reads)."""
        nv, nu = self.tile.shape[-2:]
        pu, pv = self.period
        return torch.tensor([[nu / pu, 0.0, -0.5], [0.0, nv / pv, -0.5]], dtype=torch.float64)


def _phase_bin(x: Tensor, period, bins: int) -> Tensor:
    """Which of ``bins`` equal bins of phase ``x`` falls in at ``period`` (broadcast)."""
    return (torch.remainder(x / period, 1) * bins).long().clamp(max=bins - 1)


def _bin_sums(b: Tensor, colour: Tensor, slots: int) -> tuple[Tensor, Tensor]:
    """Samples in bins ``b (N,)`` of ``slots``, colours ``colour (N, C)`` -> each bin's count
    ``(slots,)`` and colour sum ``(slots, C)``."""
    count = torch.zeros(slots, dtype=torch.float64).index_add_(
        0, b, torch.ones_like(b, dtype=torch.float64)
    )
    return count, torch.zeros(slots, colour.shape[1], dtype=torch.float64).index_add_(0, b, colour)


def dispersion(
    u: Tensor, v: Tensor, colour: Tensor, periods: Tensor, bins: int = PHASE_BINS
) -> Tensor:
    """Samples at plane coordinates ``u, v (N,)`` metres with colours ``colour (N, C)``,
    folded at each of ``periods (P, 2)`` (pu, pv) -> ``(P,)``: the colour variance left within
    the ``bins`` x ``bins`` bins of phase, as a fraction of the whole (1: no pattern at that
    period; 0: every bin one colour)."""
    u, v, colour = u.double(), v.double(), colour.double()
    total = float(((colour - colour.mean(0)) ** 2).sum())
    out = []
    if total <= 0:
        return torch.ones(periods.shape[0], dtype=torch.float64)
    sq = (colour**2).sum(1)
    for chunk in periods.double().split(max(1, (1 << 22) // max(1, u.numel()))):
        n_p = chunk.shape[0]
        bu, bv = _phase_bin(u[None], chunk[:, :1], bins), _phase_bin(v[None], chunk[:, 1:], bins)
        b = ((torch.arange(n_p)[:, None] * bins + bv) * bins + bu).reshape(-1)
        slots = n_p * bins * bins
        count, s = _bin_sums(b, colour.repeat(n_p, 1), slots)
        s2 = torch.zeros(slots, dtype=torch.float64).index_add_(0, b, sq.repeat(n_p))
        within = s2 - (s**2).sum(1) / count.clamp(min=1)
        out.append(within.view(n_p, -1).sum(1) / total)
    return torch.cat(out)


def held_out_dispersion(
    u: Tensor, v: Tensor, colour: Tensor, period: tuple[float, float], bins: int = PHASE_BINS
) -> float:
    """How badly the samples (``u, v (N,)`` metres, ``colour (N, C)``) of one period fail to
    predict those of the next: along each axis, the samples are split by the parity of the
    period they lie in (``floor(u / pu)`` odd or even), the phase bins' mean colours of one
    half predict the other half's samples (a bin the first half left empty: its mean colour),
    and the colour variance left is taken as a fraction of the predicted half's own. The
    worse axis's mean over both directions; 1 when either half along an axis holds fewer than
    ``MIN_HELD_OUT_SHARE`` of the samples (nothing repeats that could be checked)."""
    u, v, colour = u.double(), v.double(), colour.double()
    b = _phase_bin(v, period[1], bins) * bins + _phase_bin(u, period[0], bins)
    worst = 0.0
    for coord, p in ((u, period[0]), (v, period[1])):
        odd = torch.remainder(torch.floor(coord / p), 2) == 1
        if min(int(odd.sum()), int((~odd).sum())) < MIN_HELD_OUT_SHARE * len(coord):
            return 1.0
        left = []
        for fit in (odd, ~odd):
            n, s = _bin_sums(b[fit], colour[fit], bins * bins)
            mean = torch.where(n[:, None] > 0, s / n.clamp(min=1)[:, None], colour[fit].mean(0))
            c = colour[~fit]
            total = float(((c - c.mean(0)) ** 2).sum())
            left.append(float(((c - mean[b[~fit]]) ** 2).sum()) / total if total > 0 else 1.0)
        worst = max(worst, sum(left) / 2)
    return worst


def harmonic_power(u: Tensor, v: Tensor, colour: Tensor, periods: Tensor) -> Tensor:
    """``(P,)``: the power of the samples' colours (``u, v (N,)`` metres, ``colour (N, C)``,
    less their mean) at the lattice's first harmonics ``HARMONICS`` of each of ``periods (P,
    2)``, summed over harmonics and channels (a periodogram of uneven samples): peaked where
    the pattern's own harmonics are, far more sharply than a fold's bins. A harmonic's wave
    is the product of one along u and one along v, so each distinct period along either axis
    takes its waves once; a grid of periods (every pair of them) is one product of matrices."""
    u, v = u.double(), v.double()
    c = (colour.double() - colour.double().mean(0)).to(torch.complex128)
    pu, at_u = torch.unique(periods[:, 0].double(), return_inverse=True)
    pv, at_v = torch.unique(periods[:, 1].double(), return_inverse=True)
    grid = len(pu) * len(pv) <= 2 * len(periods)
    power = torch.zeros(len(periods), dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    for hu, hv in HARMONICS:
        wave_u = torch.polar(one, 2 * math.pi * hu * u / pu[:, None])  # (A, N)
        wave_v = torch.polar(one, 2 * math.pi * hv * v / pv[:, None])  # (B, N)
        if grid:  # sum over samples n of c[n] wave_u[a, n] wave_v[b, n] -> (A, C, B)
            sums = torch.einsum("anc,bn->acb", wave_u[:, :, None] * c, wave_v)
            power += sums.abs().square().sum(1)[at_u, at_v]
        else:
            sums = (wave_u[at_u] * wave_v[at_v]) @ c  # (P, C)
            power += sums.abs().square().sum(1)
    return power


def _best(periods: Tensor, theta: Tensor) -> int:
    """The period of least dispersion, or a smaller one (the smallest by tile area) that it is
    a whole multiple of along each axis (within ``MULTIPLE_TOL``) and whose dispersion is
    within ``NEAR_BEST`` of the least: a pattern folds as well at twice its period, and the
    period itself is wanted. Not any smaller period that happens to fold nearly as well: on a
    few hundred samples a fold at some unrelated period often does."""
    least = periods[int(theta.argmin())]
    ratio = least / periods
    whole = ((ratio / ratio.round().clamp_min(1) - 1).abs() <= MULTIPLE_TOL).all(1)
    near = torch.nonzero((theta <= theta.min() + NEAR_BEST) & whole).flatten()
    area = periods[near, 0] * periods[near, 1]
    return int(near[int(area.argmin())])


def _fundamental(
    period: Tensor, theta: float, u: Tensor, v: Tensor, colour: Tensor, shortest: float
) -> Tensor:
    """``period (2,)`` divided, per axis, by the largest of 4, 3, 2 whose fold disperses the
    samples as little (within ``SUBPERIOD_SLACK``) and leaves it at least ``shortest``: bins of
    a fixed fraction of the period that happen to meet the pattern's edges can make a multiple
    of the period fold better than the period itself."""
    period = period.clone()
    for axis in (0, 1):
        for n in (4, 3, 2):
            cand = period.clone()
            cand[axis] = period[axis] / n
            if float(cand[axis]) < shortest:
                continue
            if float(dispersion(u, v, colour, cand[None])[0]) <= theta + SUBPERIOD_SLACK:
                period = cand
                break
    return period


def _square_peak(
    mid: float, span: float, u: Tensor, v: Tensor, colour: Tensor
) -> tuple[float, float]:
    """The square period (p, p), p within ``mid`` times exp(+-``span``), whose harmonics'
    power is highest, and that power."""
    p = mid * torch.exp(torch.linspace(-span, span, PEAK_STEPS, dtype=torch.float64))
    power = harmonic_power(u, v, colour, torch.stack([p, p], 1))
    i = int(power.argmax())
    return float(p[i]), float(power[i])


def _square_if_fits(best: Tensor, peak: float, u: Tensor, v: Tensor, colour: Tensor) -> Tensor:
    """``best (2,)``, or the square period whose harmonics' power is highest, when the two
    periods differ by at most ``SQUARE_SPAN`` and that power is within ``SQUARE_POWER`` of
    ``peak`` (the best's): along an axis the samples span few periods of, the peak is broad."""
    ratio = abs(math.log(float(best[0] / best[1])))
    if ratio > SQUARE_SPAN:
        return best
    side, power = _square_peak(float(best.prod().sqrt()), ratio / 2 + PEAK_SPANS[1], u, v, colour)
    return (
        torch.tensor([side, side], dtype=best.dtype) if power >= (1 - SQUARE_POWER) * peak else best
    )


def located(u: Tensor, v: Tensor, period: tuple[float, float]) -> bool:
    """Whether the bins of phase at ``period`` tell where the samples (``u, v (N,)`` metres)
    lie: less than ``MIN_POSITION_DISPERSION`` of the variance of their u, or of their v, left
    within the bins. Samples on a regular grid (one frame's pixels on a wall seen square-on)
    at a period near a multiple of its step fall in a phase that drifts slowly across the
    plane, so each bin gathers one stretch of it: the fold is then a map of the plane, not a
    pattern, and its periods of one parity predict the others' because neighbours look alike.
    Over a pattern's periods every bin gathers samples from the whole plane."""
    at = torch.tensor([period], dtype=torch.float64)
    return any(
        float(dispersion(u, v, x.double()[:, None], at)[0]) < MIN_POSITION_DISPERSION
        for x in (u, v)
    )


def resolved(footprint: Tensor | None, period: tuple[float, float]) -> bool:
    """Whether at least ``MIN_SAMPLES`` of the samples, of ``footprint (N,)`` metres each
    (None: not known, taken as fine enough), are at most ``MAX_FOOTPRINT_SHARE`` (a half) of
    the larger of ``period`` wide: a period the samples cannot resolve (every pixel as wide
    as one) is an alias of their grid, whatever it folds to. The larger, since a stripe's
    period along its stripes is any."""
    if footprint is None:
        return True
    return int((footprint <= MAX_FOOTPRINT_SHARE * max(period)).sum()) >= MIN_SAMPLES


def _checked(
    u: Tensor, v: Tensor, colour: Tensor, period: tuple[float, float], footprint: Tensor | None
) -> float | None:
    """The dispersion the fold at ``period`` leaves, or None when it is no pattern: more than
    ``MAX_DISPERSION`` left, the samples do not resolve it (``resolved``), its bins of phase
    tell where the samples lie (``located``), or its periods of one parity do not predict the
    others' (``held_out_dispersion`` above ``MAX_HELD_OUT``)."""
    theta = float(dispersion(u, v, colour, torch.tensor([period], dtype=torch.float64))[0])
    if theta > MAX_DISPERSION or not resolved(footprint, period) or located(u, v, period):
        return None
    if held_out_dispersion(u, v, colour, period) > MAX_HELD_OUT:
        return None
    return theta


def find_period(
    u: Tensor,
    v: Tensor,
    colour: Tensor,
    footprint: Tensor | None = None,
    periods: tuple[float, float] = PERIOD_RANGE_M,
) -> tuple[float, float, float] | None:
    """The period (pu, pv) metres of the pattern the samples (``u, v (N,)`` plane coordinates,
    ``colour (N, C)``, each a pixel ``footprint (N,)`` metres wide if known) show, searched over
    ``periods`` (lo, hi; its harmonics' peak may place it a few per cent beyond), and the
    dispersion its fold leaves; None when there are fewer than ``MIN_SAMPLES`` or no period
    passes ``_checked``: the best, or (``SQUARE_WHEN_REFUSED``) the square of either of its
    axes' periods."""
    if u.numel() < MIN_SAMPLES:
        return None
    if u.numel() > MAX_SEARCH_SAMPLES:  # many observed frames: an even subset searches
        every = slice(None, None, -(-u.numel() // MAX_SEARCH_SAMPLES))
        u, v, colour = u[every], v[every], colour[every]
        footprint = None if footprint is None else footprint[every]
    lo, hi = periods
    # a grid as dense as COARSE_STEPS over PERIOD_RANGE_M
    full = math.log(PERIOD_RANGE_M[1] / PERIOD_RANGE_M[0])
    steps = max(2, round(COARSE_STEPS * math.log(hi / lo) / full))
    grid = torch.exp(torch.linspace(math.log(lo), math.log(hi), steps, dtype=torch.float64))
    step = max(1, u.numel() // COARSE_SAMPLES)
    some = slice(None, None, step)
    coarse = torch.cartesian_prod(grid, grid)
    best = coarse[_best(coarse, dispersion(u[some], v[some], colour[some], coarse))]
    offsets = torch.exp(torch.linspace(-FINE_SPAN, FINE_SPAN, FINE_STEPS, dtype=torch.float64))

    def refine(around: Tensor) -> tuple[Tensor, float]:
        fine = torch.cartesian_prod(around[0] * offsets, around[1] * offsets)
        theta = dispersion(u, v, colour, fine)
        i = _best(fine, theta)
        return fine[i], float(theta[i])

    best, theta = refine(best)
    smaller = _fundamental(best, theta, u, v, colour, lo)
    if not torch.equal(smaller, best):
        best, theta = refine(smaller)
    for span in PEAK_SPANS:  # then the peak of the pattern's harmonics, ever finer
        steps = torch.exp(torch.linspace(-span, span, PEAK_STEPS, dtype=torch.float64))
        around = torch.cartesian_prod(best[0] * steps, best[1] * steps)
        power = harmonic_power(u, v, colour, around)
        best = around[int(power.argmax())]
    best = _square_if_fits(best, float(power.max()), u, v, colour)
    period = float(best[0]), float(best[1])
    theta = _checked(u, v, colour, period, footprint)
    if theta is not None:
        return period[0], period[1], theta
    # refused: one axis may be misread where the samples span a period or two of it; the
    # square of either axis's period (the smaller first), at its own harmonics' peak
    for side in sorted(period) if SQUARE_WHEN_REFUSED else ():
        for span in PEAK_SPANS:
            side, _ = _square_peak(side, span, u, v, colour)
        theta = _checked(u, v, colour, (side, side), footprint)
        if theta is not None:
            return side, side, theta
    return None


def fold_tile(u: Tensor, v: Tensor, colour: Tensor, period: tuple[float, float]) -> Tensor:
    """One period of the samples' pattern ``(C, nv, nu)``: each tile pixel the mean colour of
    the samples folded onto it, weighted by a Gaussian of ``FOLD_SIGMA_PX`` in phase (wrapped
    round the tile, so a pixel no sample fell on takes its neighbours'); ``TEXEL_M`` pixels,
    within ``TILE_PX`` a side."""
    pu, pv = period
    nu = min(max(round(pu / TEXEL_M), TILE_PX[0]), TILE_PX[1])
    nv = min(max(round(pv / TEXEL_M), TILE_PX[0]), TILE_PX[1])
    fu, fv = _phase_px(u, pu, nu), _phase_px(v, pv, nv)
    cu = torch.arange(nu, dtype=torch.float64) + 0.5
    cv = torch.arange(nv, dtype=torch.float64) + 0.5

    def wrapped(d: Tensor, n: int) -> Tensor:
        return torch.remainder(d + n / 2, n) - n / 2

    s = 2 * FOLD_SIGMA_PX**2
    wu = torch.exp(-(wrapped(fu[:, None] - cu[None], nu) ** 2) / s)  # (N, nu)
    wv = torch.exp(-(wrapped(fv[:, None] - cv[None], nv) ** 2) / s)  # (N, nv)
    weight = torch.einsum("nv,nu->vu", wv, wu)
    acc = torch.einsum("nv,nu,nc->cvu", wv, wu, colour.double())
    return (acc / weight.clamp(min=1e-12)).to(colour.dtype)


def _phase_px(x: Tensor, period: float, n: int) -> Tensor:
    """Plane coordinates ``x`` metres -> their phase in a tile of ``n`` pixels a ``period``."""
    return torch.remainder(x.double() / period, 1) * n


def box_weights(phase: Tensor, width: Tensor, n: int) -> Tensor:
    """Phases ``(N,)`` in tile pixels of a tile ``n`` pixels round and box widths ``(N,)`` in
    tile pixels -> ``(N, n)``: the share of each box ``[phase - width / 2, phase + width / 2]``
    that falls on each tile pixel ``[j, j + 1)``, wrapped round the tile (rows sum to 1; a
    width under 1e-3 pixels counts as 1e-3)."""
    w = width.clamp_min(1e-3)
    lo, hi = phase - w / 2, phase + w / 2
    j = torch.arange(n, dtype=phase.dtype, device=phase.device)
    out = torch.zeros((len(phase), n), dtype=phase.dtype, device=phase.device)
    turns = math.ceil(float(w.max()) / n) + 1 if len(w) else 0
    for k in range(-turns, turns + 1):
        out += (
            torch.minimum(hi[:, None], j + 1 + k * n) - torch.maximum(lo[:, None], j + k * n)
        ).clamp_min(0)
    return out / w[:, None]


def sharpen_tile(
    tile: Tensor,
    u: Tensor,
    v: Tensor,
    colour: Tensor,
    footprint: Tensor,
    period: tuple[float, float],
    smoothing: float = SHARPEN_SMOOTHING,
    iterations: int = SHARPEN_ITERATIONS,
) -> Tensor:
    """A tile ``(C, nv, nu)`` of the pattern of period ``period`` (``fold_tile``'s) -> the
    tile whose averages over each sample's footprint best give the samples: ``u, v (N,)``
    plane coordinates, ``colour (N, C)``, ``footprint (N,)`` metres, the width of the square of
    plane each sample's pixel averaged (as a renderer box-filters a texture). The least-squares
    fit plus ``smoothing`` times the tile's squared differences between neighbours (wrapped;
    per sample per tile pixel), by conjugate gradients from ``tile`` (at most ``iterations``).
    The fold is the pattern blurred by the footprints; this undoes what the samples' spread of
    phases allows. Not clamped: an edge may overshoot [0, 1] a little, and the tile is only
    read as differences (a band, a finer detail), where clamping one channel would turn the
    difference's colour."""
    C, nv, nu = tile.shape
    pu, pv = period
    f = footprint.double()
    wu = box_weights(_phase_px(u, pu, nu), f / pu * nu, nu)  # (N, nu)
    wv = box_weights(_phase_px(v, pv, nv), f / pv * nv, nv)  # (N, nv)
    lam = smoothing * len(u) / (nu * nv)

    def seen(t: Tensor) -> Tensor:  # A t: the tile (C, nv, nu) averaged by each sample (N, C)
        return torch.einsum("nv,ncv->nc", wv, torch.einsum("nu,cvu->ncv", wu, t))

    def spread(r: Tensor) -> Tensor:  # A^T r: per-sample values (N, C) back onto the tile
        return torch.einsum("nu,ncv->cvu", wu, torch.einsum("nv,nc->ncv", wv, r))

    def normal(t: Tensor) -> Tensor:  # (A^T A + lam L) t, L the wrapped graph Laplacian
        lap = 4 * t - t.roll(1, -1) - t.roll(-1, -1) - t.roll(1, -2) - t.roll(-1, -2)
        return spread(seen(t)) + lam * lap

    x = tile.double().clone()
    rhs = spread(colour.double())
    r = rhs - normal(x)
    p, rr = r.clone(), float((r * r).sum())
    stop = 1e-12 * float((rhs * rhs).sum())
    for _ in range(iterations):
        if rr <= stop:
            break
        q = normal(p)
        alpha = rr / max(float((p * q).sum()), 1e-300)
        x, r = x + alpha * p, r - alpha * q
        rr, rr_old = float((r * r).sum()), rr
        p = r + (rr / rr_old) * p
    return x.to(tile.dtype)
