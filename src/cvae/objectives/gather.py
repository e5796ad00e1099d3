"""Gathering a batch from every process, for losses defined on the global batch.

Contrastive losses (NT-Xent, Barlow Twins, InfoNCE) couple the samples of a batch, so under
data-parallel training each process must see the embeddings of all processes. A plain
``torch.distributed.all_gather`` returns tensors without autograd history: gradients reaching the
other processes' rows would be dropped. :func:`all_gather_grad` keeps them (the ``GatherLayer``
of SimCLR/Barlow Twins DDP code).

Gradient bookkeeping: every process computes the same loss ``L`` on the gathered batch; the
backward pass sums the incoming gradients over processes (all-reduce) and returns this process's
rows, i.e. ``W * dL/dx_r`` with ``W`` processes. DistributedDataParallel then *averages* the
parameter gradients over the ``W`` processes, ``(1/W) sum_r W dL/dtheta|_r = dL/dtheta``: exactly
the single-process gradient on the global batch, with no extra loss scaling.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def _sizes(x: torch.Tensor) -> list[int]:
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s) for s in sizes]


def _gather(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Concatenate every process's ``x`` (rows may differ in number), in rank order."""
    longest = max(sizes)
    padded = x
    if x.shape[0] < longest:
        padded = x.new_zeros((longest, *x.shape[1:]))
        padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)])


class _AllGatherGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, sizes: list[int] | None) -> torch.Tensor:
        sizes = sizes or _sizes(x)
        rank = dist.get_rank()
        ctx.rows = (sum(sizes[:rank]), sum(sizes[: rank + 1]))
        return _gather(x, sizes)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start, stop = ctx.rows
        return grad[start:stop], None


def distributed() -> bool:
    """Whether a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_gather_grad(x: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """``x: [n_r, ...]`` on process r -> ``[sum_r n_r, ...]``, rows in rank order, differentiable.

    Backward: the gradient of the gathered tensor is summed over processes and this process's rows
    are returned (see the module docstring for why no loss rescaling is needed under DDP). Every
    process must call it, in the same order. ``sizes``: every process's ``n_r`` when known (saves
    one collective), else exchanged. Without a multi-process group it returns ``x``.
    """
    if not distributed():
        return x
    out: torch.Tensor = _AllGatherGrad.apply(x, sizes)
    return out


@torch.no_grad()
def all_gather(x: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """Like :func:`all_gather_grad` without autograd (e.g. MoCo keys, images for shuffled BN)."""
    return _gather(x, sizes or _sizes(x)) if distributed() else x
