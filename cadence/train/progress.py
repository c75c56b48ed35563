"""Progress display: a bar per epoch on a terminal, one plain line per epoch otherwise.

The bar shows the training loss, the learning rate and the throughput (samples per second); it uses ``tqdm``
when installed and a small built-in bar otherwise. When the output is not a terminal (a log file, CI) each
epoch prints one line instead, so logs stay readable. Only the main process shows progress.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from cadence.errors import ConfigError
from cadence.train.callback import Callback
from cadence.train.state import TrainState

__all__ = ["ProgressBar"]

MODES = ("auto", "bar", "lines")


class ProgressBar(Callback):
    """Show progress per epoch.

    Args:
        mode: ``"auto"`` (a bar on a terminal, plain lines otherwise), ``"bar"`` or ``"lines"``.
        stream: where to write (``sys.stderr`` by default).
        refresh_seconds: at most one update of the bar's numbers per this many seconds.
    """

    def __init__(
        self, mode: str = "auto", stream: TextIO | None = None, refresh_seconds: float = 0.5
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"progress mode must be one of {list(MODES)}, got {mode!r}")
        self.mode = mode
        self.stream = stream
        self.refresh_seconds = refresh_seconds
        self._bar: Any = None

    def _output(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def _use_bar(self) -> bool:
        if self.mode != "auto":
            return self.mode == "bar"
        isatty = getattr(self._output(), "isatty", None)
        return bool(isatty and isatty())

    def on_epoch_start(self, state: TrainState) -> None:
        self._epochs = max(1, math.ceil(state.total_steps / max(1, state.steps_per_epoch)))
        self._samples = 0
        self._epoch_start = self._last_refresh = time.perf_counter()
        self._epoch_start_step = state.step
        if self._use_bar():
            first_step = state.step - state.epoch * state.steps_per_epoch
            total = max(0, min(state.steps_per_epoch - max(0, first_step), state.total_steps - state.step))
            self._bar = _make_bar(total, f"epoch {state.epoch + 1}/{self._epochs}", self._output())

    def on_batch_start(self, state: TrainState) -> None:
        inputs = state.batch[0] if state.batch is not None else None
        self._samples += len(inputs) if hasattr(inputs, "__len__") else 1

    def on_step_end(self, state: TrainState) -> None:
        if self._bar is None:
            return
        self._bar.update(1)
        now = time.perf_counter()
        if now - self._last_refresh >= self.refresh_seconds:
            self._last_refresh = now
            self._bar.set_postfix_str(self._numbers(state, now), refresh=False)

    def _numbers(self, state: TrainState, now: float) -> str:
        throughput = self._samples / max(now - self._epoch_start, 1e-9)
        lr = state.hyperparams.get("lr", state.optimizer.param_groups[0]["lr"])
        return f"loss {state.last_loss:.4g}, lr {lr:.3g}, {throughput:,.0f} samples/s"

    def on_epoch_end(self, state: TrainState) -> None:
        now = time.perf_counter()
        evaluation = "  ".join(f"{key} {value:.4g}" for key, value in state.metrics.items())
        if self._bar is not None:
            self._bar.set_postfix_str(self._numbers(state, now) + (f", {evaluation}" if evaluation else ""))
            self._bar.close()
            self._bar = None
            return
        line = (
            f"epoch {state.epoch + 1}/{self._epochs}  step {state.step}/{state.total_steps}  "
            f"{self._numbers(state, now).replace(', ', '  ')}  {now - self._epoch_start:.1f}s"
        )
        print(line + (f"  {evaluation}" if evaluation else ""), file=self._output(), flush=True)

    def on_fit_end(self, state: TrainState) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _make_bar(total: int, description: str, stream: TextIO) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _SimpleBar(total, description, stream)
    return tqdm(total=total, desc=description, unit="step", file=stream, dynamic_ncols=True, leave=True)


class _SimpleBar:
    """The part of tqdm's interface we use, drawn with ``\\r`` on one line."""

    def __init__(self, total: int, description: str, stream: TextIO, width: int = 24) -> None:
        self.total, self.description, self.stream, self.width = total, description, stream, width
        self.count, self.postfix, self._drawn = 0, "", 0.0

    def update(self, count: int = 1) -> None:
        self.count += count
        if time.perf_counter() - self._drawn > 0.2 or self.count >= self.total:
            self._draw()

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text
        if refresh:
            self._draw()

    def _draw(self) -> None:
        self._drawn = time.perf_counter()
        filled = int(self.width * self.count / max(1, self.total))
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.description} [{bar}] {self.count}/{self.total} {self.postfix}")
        self.stream.flush()

    def close(self) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()
