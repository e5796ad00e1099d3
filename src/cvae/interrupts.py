"""Sections that Ctrl-C and SIGTERM do not cut in half."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HELD = (signal.SIGINT, signal.SIGTERM)
"""The signals :func:`held_signals` holds back: the ones that stop a command (cli.main)."""


@contextmanager
def held_signals() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM held back, then deliver the first one caught to
    its own handler (KeyboardInterrupt for Ctrl-C).

    For work that an exception raised halfway would corrupt rather than stop: an import of
    torch, a ``torch.save`` whose writer calls back into Python. An ignored signal stays
    ignored; outside the main thread (where handlers cannot be set) the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for signum in HELD:
        handler = signal.getsignal(signum)
        if handler is not signal.SIG_IGN and handler is not None:
            previous[signum] = signal.signal(signum, lambda s, _: caught.append(s))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])
