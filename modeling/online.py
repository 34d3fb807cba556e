"""The monitor's window: a NumPy ring buffer that applies the gap rule as rows arrive.

`OnlineWindow` keeps the last W rows of a model's input columns, already through the gap
rule of `modeling.data` (a missing value is carried forward for at most `max_gap_s`
seconds; what stays missing is NaN, and the row's `missing` flag is set), so a forecast
once a second costs one array copy and the compiled model call: no DataFrame is built in
the hot path (benchmarks/inference.py measures it).

Online, a gap's length is not known while it lasts: its first `max_gap_s` seconds are
filled at once, as training would fill a gap that ends by then; offline, a longer gap is
not filled at all and its windows are dropped. A monitor cannot drop a second, so it
predicts from the carried value, with the `missing` flag the model was trained to read.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .data import DEFAULT_MAX_GAP_S
from .features import as_float


class OnlineWindow:
    """The last `window` rows of `columns` plus the `missing` flag, filled as training fills them."""

    def __init__(self, columns: Sequence[str], window: int, max_gap_s: int = DEFAULT_MAX_GAP_S):
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.columns = list(columns)
        self.window = int(window)
        self.max_gap_s = int(max_gap_s)
        width = len(self.columns) + 1
        self._buf = np.full((self.window, width), np.nan)
        self._last = np.full(len(self.columns), np.nan)      # last real value per column
        self._gap = np.zeros(len(self.columns), dtype=np.int64)  # seconds missing so far, per column
        self._next = 0
        self.rows = 0

    def push(self, row: Mapping[str, object]) -> None:
        """Add one second: a mapping of column -> value (missing, empty or non-finite = NaN)."""
        self.push_values(np.array([as_float(row.get(c)) for c in self.columns]),
                         target_down=as_float(row.get("target_up", 1)) == 0)

    def push_values(self, raw: np.ndarray, target_down: bool = False) -> None:
        """Add one second given as raw values in `columns` order."""
        raw = np.asarray(raw, dtype="float64")
        isna = ~np.isfinite(raw)
        self._gap = np.where(isna, self._gap + 1, 0)
        self._last = np.where(isna, self._last, raw)
        filled = np.where(isna & (self._gap <= self.max_gap_s), self._last, np.where(isna, np.nan, raw))
        slot = self._buf[self._next]
        slot[:-1] = filled
        slot[-1] = 1.0 if (isna.any() or target_down) else 0.0
        self._next = (self._next + 1) % self.window
        self.rows += 1

    @property
    def ready(self) -> bool:
        return self.rows >= self.window

    def values(self) -> np.ndarray:
        """Return the window oldest first, (W, F + 1); rows before the first push are NaN."""
        return np.concatenate([self._buf[self._next:], self._buf[:self._next]])
