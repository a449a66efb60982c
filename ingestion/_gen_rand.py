"""Fast deterministic randomness, simulation clock and seasonality for the generator."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import numpy as np

T = TypeVar("T")

_BLOCK = 1 << 14
DAY = 86_400


class Rand:
    """Scalar draws served from numpy blocks.

    One PCG64 stream stays the single source of randomness (so output is reproducible from the
    seed), but a per-event `gen.random()` call costs about a microsecond of numpy overhead;
    slicing a pre-drawn block costs a few tens of nanoseconds.
    """

    __slots__ = ("_b", "_bi", "_u", "_ui", "gen")

    def __init__(self, gen: np.random.Generator) -> None:
        self.gen = gen
        self._u: list[float] = []
        self._ui = 0
        self._b = b""
        self._bi = 0

    def u(self) -> float:
        """Uniform in [0, 1)."""
        i = self._ui
        if i >= len(self._u):
            self._u = self.gen.random(_BLOCK).tolist()
            i = 0
        self._ui = i + 1
        return self._u[i]

    def chance(self, p: float) -> bool:
        return self.u() < p

    def below(self, n: int) -> int:
        """Uniform integer in [0, n)."""
        return int(self.u() * n)

    def between(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.u()

    def int_between(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi] (both ends included)."""
        return lo + int(self.u() * (hi - lo + 1))

    def pick(self, seq: Sequence[T]) -> T:
        return seq[int(self.u() * len(seq))]

    def weighted(self, cum: Sequence[float]) -> int:
        """Index drawn with probability proportional to the steps of a cumulative list."""
        return bisect_right(cum, self.u() * cum[-1])

    def expo(self, mean: float) -> float:
        return -mean * math.log(1.0 - self.u())

    def geometric_extra(self, p_more: float, cap: int) -> int:
        """How many more steps a process with continue-probability p_more takes (at most cap)."""
        n = 0
        while n < cap and self.u() < p_more:
            n += 1
        return n

    def hex(self, nbytes: int) -> str:
        i = self._bi
        if i + nbytes > len(self._b):
            self._b = self.gen.bytes(_BLOCK * 4)
            i = 0
        self._bi = i + nbytes
        return self._b[i : i + nbytes].hex()

    def uuid(self) -> str:
        """A version-4-shaped UUID string from the stream (uuid.uuid4 would not be reproducible)."""
        h = self.hex(16)
        variant = "89ab"[int(h[16], 16) & 3]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def cumulative(weights: Iterable[float]) -> list[float]:
    """Running sums, for `Rand.weighted`."""
    out: list[float] = []
    total = 0.0
    for w in weights:
        total += float(w)
        out.append(total)
    return out


class Clock:
    """Simulation time: integer seconds from the UTC midnight at or before the window start.

    Day boundaries sit on calendar midnights so that hour-of-day and weekday patterns mean what
    they say even when `end` is not a midnight; the window itself is [lo, hi).
    """

    def __init__(self, end: datetime, days: int, pre_days: int, post_days: int) -> None:
        end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
        end = end.replace(microsecond=0)
        start = end - timedelta(days=days)
        self.base = start.replace(hour=0, minute=0, second=0)
        self.lo = int((start - self.base).total_seconds())
        self.hi = self.lo + days * DAY
        self.pre_days = pre_days
        self.sim_days = -(-self.hi // DAY)  # days touched by the window, rounded up
        self.post_days = post_days
        total = pre_days + self.sim_days + post_days
        self._dates = [(self.base + timedelta(days=d - pre_days)).date() for d in range(total)]
        self._date_str = [d.isoformat() for d in self._dates]

    def date(self, day: int) -> datetime:
        d = self._dates[day + self.pre_days]
        return datetime(d.year, d.month, d.day, tzinfo=UTC)

    def _parts(self, ts: int) -> tuple[str, int, int, int]:
        d, s = divmod(ts, DAY)
        h, r = divmod(s, 3600)
        m, sec = divmod(r, 60)
        return self._date_str[d + self.pre_days], h, m, sec

    def z(self, ts: int) -> str:
        """RFC 3339 UTC with a Z, as our API and the POS export write it."""
        d, h, m, s = self._parts(ts)
        return f"{d}T{h:02d}:{m:02d}:{s:02d}Z"

    def offset(self, ts: int) -> str:
        """RFC 3339 with a numeric offset, as Shopify writes it (shop time zone UTC)."""
        d, h, m, s = self._parts(ts)
        return f"{d}T{h:02d}:{m:02d}:{s:02d}+00:00"

    def naive(self, ts: int) -> str:
        """WooCommerce's `date_created_gmt`: UTC without any zone marker."""
        d, h, m, s = self._parts(ts)
        return f"{d}T{h:02d}:{m:02d}:{s:02d}"

    def seasonality(self) -> np.ndarray:
        """Demand multiplier per simulation day (index day + pre_days): weekday x time of year."""
        weekday = (0.92, 0.9, 0.95, 1.0, 1.08, 1.2, 1.05)
        month = (0.85, 0.9, 1.0, 1.0, 1.0, 0.95, 0.92, 0.95, 1.0, 1.02, 1.12, 1.0)
        out = np.empty(len(self._dates))
        for i, d in enumerate(self._dates):
            f = weekday[d.weekday()] * month[d.month - 1]
            if d.month == 11 and d.day >= 24:
                f *= 1.7  # Black Friday week
            elif d.month == 12:
                if d.day <= 20:
                    f *= 1.8  # the December gift rush
                elif d.day <= 24:
                    f *= 1.2
                elif d.day <= 26:
                    f *= 0.4
                else:
                    f *= 1.15  # Boxing Day sales
            out[i] = f
        return out

    def in_gift_season(self, day: int) -> bool:
        return self._dates[day + self.pre_days].month in (11, 12)


# Relative activity per hour of day, by channel.
WEB_HOURS = cumulative(
    (
        1,
        0.6,
        0.3,
        0.2,
        0.2,
        0.4,
        1,
        2,
        3,
        3.5,
        3.5,
        4,
        5,
        4.5,
        3.8,
        3.5,
        3.6,
        4,
        4.6,
        6,
        6.5,
        6,
        4.5,
        2.5,
    )
)
POS_HOURS = cumulative((0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 5, 7, 7, 6, 5.5, 5.5, 5, 3, 0, 0, 0, 0, 0))
CHAT_HOURS = cumulative(
    (0.5, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 2, 4, 5, 5, 5, 6, 5, 4, 4, 4, 4.5, 5, 6, 6, 5, 3, 1.5)
)


def time_in_day(rand: Rand, day: int, hours: list[float]) -> int:
    """A second within `day` (a simulation day) following an hour-of-day profile."""
    return day * DAY + rand.weighted(hours) * 3600 + rand.below(3600)
