"""CPU thread counts (torch's, and the BLAS pools numpy and scipy use), changed only for the
duration of a ``with`` block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads and at most ``n`` BLAS threads for numpy and
    scipy (``None``: leave the counts as they are), then restore the previous counts, so a
    library call never changes its caller's setting."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(previous)
