"""Progress output that suits where it goes.

On a terminal: a tqdm bar (carriage-return updates). Anywhere else (a log file, CI, a cluster
job's stderr): one plain line every ``interval`` seconds or every ``fraction`` of the total, with
the same figures (count, rate, postfix), so a log holds a few dozen lines instead of thousands of
carriage-return updates.

``progress(total=..., desc=..., unit=...)`` returns an object with tqdm's ``update``,
``set_postfix``, ``close`` and context-manager protocol; every command uses it.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any


class PlainProgress:
    """tqdm's interface, printing a plain line every ``interval`` s or ``fraction`` of ``total``."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", file: IO[str] | None = None,
                 interval: float = 30.0, fraction: float = 0.1, disable: bool = False, initial: int = 0,
                 clock=time.monotonic, **_ignored: Any) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.file = file if file is not None else sys.stderr
        self.interval = float(interval)
        self.fraction = float(fraction)
        self.disable = disable
        self.n = initial
        self._initial = initial
        self._clock = clock
        self._t0 = clock()
        self._last_t = self._t0
        self._last_n = initial
        self._postfix = ""
        self._closed = False

    # --- tqdm's interface -------------------------------------------------------------------
    def update(self, n: int = 1) -> None:
        self.n += n
        if self.disable:
            return
        now = self._clock()
        step = self.fraction * self.total if self.total else None
        due_time = now - self._last_t >= self.interval
        due_frac = step is not None and step > 0 and self.n - self._last_n >= step
        if due_time or due_frac:
            self._emit(now)

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kw: Any) -> None:
        items = dict(ordered_dict or {}, **kw)
        self._postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # A last line only if something happened since the previous one.
        if not self.disable and self.n != self._last_n:
            self._emit(self._clock())

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- output -----------------------------------------------------------------------------
    def line(self, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        elapsed = max(now - self._t0, 1e-9)
        rate = (self.n - self._initial) / elapsed
        count = f"{self.n:,}" + (f"/{self.total:,} ({100.0 * self.n / self.total:.0f} %)" if self.total else "")
        text = f"{self.desc}: {count} {self.unit}, {rate:,.1f} {self.unit}/s, {_clock_text(elapsed)} elapsed"
        if self.total and self.n > self._initial:
            text += f", ~{_clock_text((self.total - self.n) / rate)} left"
        if self._postfix:
            text += f", {self._postfix}"
        return text

    def _emit(self, now: float) -> None:
        print(self.line(now), file=self.file, flush=True)
        self._last_t = now
        self._last_n = self.n


def _clock_text(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def is_terminal(stream: IO[str] | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress(total: int | None = None, desc: str = "", unit: str = "it", disable: bool = False,
             file: IO[str] | None = None, **kw: Any):
    """A tqdm bar on a terminal, else a :class:`PlainProgress` (plain lines every ~30 s / 10 %)."""
    file = sys.stderr if file is None else file
    if is_terminal(file):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=file,
                    dynamic_ncols=True, mininterval=1.0, **kw)
    kw = {k: v for k, v in kw.items() if k in ("initial", "interval", "fraction")}
    return PlainProgress(total=total, desc=desc, unit=unit, disable=disable, file=file, **kw)
