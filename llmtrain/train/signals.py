"""SIGTERM / SIGINT ask the loop to stop after the current step (and checkpoint); a second
signal ends the process at once."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import torch
from accelerate import Accelerator

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            os._exit(128 + signum)  # the second signal: no more waiting
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in _SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def requested(self, accelerator: Accelerator) -> bool:
        """Whether any process was asked to stop (all processes agree, so they stop together)."""
        if accelerator.num_processes == 1:
            return self.signum is not None
        flag = torch.tensor(0 if self.signum is None else self.signum, device=accelerator.device)
        agreed = int(accelerator.reduce(flag, "max").item())
        if agreed and self.signum is None:
            self.signum = agreed
        return bool(agreed)
