"""InfoNCE (van den Oord, Li, Vinyals, 2018) as used by CR-VAE (Lygerakis & Rueckert, 2023).

Two variants (CR-VAE paper and code):
    :func:`info_nce_queue`: MoCo (He et al., CVPR 2020) with negatives from a FIFO queue of past
        keys, :class:`KeyQueue`; what the CR-VAE code does (K = 4096, T = 0.1).
    :func:`info_nce_in_batch`: the paper's wording, negatives are the other keys of the batch.
Keys come from a momentum (EMA) key encoder, see :mod:`cvae.objectives.ema`, and must carry no
gradient: the caller computes them under ``torch.no_grad()`` or detaches them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_NORM_EPS = 1e-12


def _check_pair(q: torch.Tensor, k: torch.Tensor) -> None:
    if q.ndim != 2 or q.shape != k.shape:
        raise ValueError(f"expected q, k of equal shape [N, d], got {q.shape}, {k.shape}")
    if q.shape[0] < 1:
        raise ValueError("expected a non-empty batch")


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def info_nce_queue(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """MoCo InfoNCE with queue negatives, mean over the batch, a float32 scalar.

    ``q: [N, d]`` queries (gradient flows into them), ``k: [N, d]`` keys (row i is the positive
    of query i; no gradient expected, the caller detaches), ``queue: [d, K]`` whose *columns* are
    the K negatives, assumed already L2-normalised (as :class:`KeyQueue` keeps them; the queue is
    not normalised again here). ``q`` and ``k`` are L2-normalised over ``d`` (eps 1e-12), then

        logits_i = [q_i . k_i, q_i . queue[:, 0], ..., q_i . queue[:, K-1]] / temperature,
        loss = (1 / N) sum_i [ -logits_i[0] + log sum_c exp(logits_i[c]) ],

    i.e. a cross-entropy with the positive at index 0 (log-sum-exp, stable). There are no in-batch
    negatives. The queue is copied before use, so it may be updated in place (``enqueue``) before
    ``backward()`` is called, as the CR-VAE code does.
    """
    _check_pair(q, k)
    _check_temperature(temperature)
    if queue.ndim != 2 or queue.shape[0] != q.shape[1]:
        raise ValueError(f"expected queue of shape [d={q.shape[1]}, K], got {queue.shape}")
    qn = F.normalize(q.float(), dim=1, eps=_NORM_EPS)
    kn = F.normalize(k.float(), dim=1, eps=_NORM_EPS)
    negatives = queue.detach().to(dtype=torch.float32, copy=True)
    l_pos = (qn * kn).sum(1, keepdim=True)  # [N, 1]
    l_neg = qn @ negatives  # [N, K]
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    targets = torch.zeros(q.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, targets)


def info_nce_in_batch(q: torch.Tensor, k: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE with in-batch negatives (CR-VAE paper, Eq. 4), mean over the batch, float32 scalar.

    ``q, k: [N, d]``, row i of ``k`` is the positive of query i and the other N - 1 keys are its
    negatives. With ``q_n, k_n`` L2-normalised rows (eps 1e-12), ``S = q_n k_n^T / temperature``:

        loss = (1 / N) sum_i [ -S[i, i] + log sum_j exp(S[i, j]) ].

    The paper has no temperature (``temperature=1``); 0.1 matches the code's queue variant. As
    for :func:`info_nce_queue`, ``k`` is expected without gradient (the caller detaches).
    """
    _check_pair(q, k)
    _check_temperature(temperature)
    qn = F.normalize(q.float(), dim=1, eps=_NORM_EPS)
    kn = F.normalize(k.float(), dim=1, eps=_NORM_EPS)
    logits = qn @ kn.T / temperature
    targets = torch.arange(q.shape[0], device=logits.device)
    return F.cross_entropy(logits, targets)


class KeyQueue(nn.Module):
    """FIFO queue of the ``size`` (K) most recent keys of dimension ``dim`` (d), MoCo style.

    Buffers (persistent, so saved in ``state_dict`` and restored exactly on resume):
        ``queue: [d, K]`` float32, columns are L2-normalised keys; initialised as
            column-normalised N(0, 1) noise (CR-VAE code), drawn from ``generator`` if given,
            else from a fresh ``torch.Generator`` seeded with ``seed`` if given, else from the
            global RNG.
        ``ptr``: long scalar, the column the next key is written to.

    :meth:`enqueue` overwrites the oldest columns. MoCo and the CR-VAE code require K % N == 0;
    here any batch size works: a batch that runs past column K - 1 wraps around to column 0, and a
    batch larger than K keeps only its last K keys (the others would be overwritten anyway). When
    K % N == 0 the result is identical to the reference ``_dequeue_and_enqueue``.
    """

    queue: torch.Tensor
    ptr: torch.Tensor

    def __init__(
        self,
        dim: int,
        size: int,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if dim < 1 or size < 1:
            raise ValueError(f"dim and size must be positive, got dim={dim}, size={size}")
        if generator is not None and seed is not None:
            raise ValueError("give either generator or seed, not both")
        if seed is not None:
            generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(dim, size, generator=generator, dtype=torch.float32)
        self.register_buffer("queue", F.normalize(noise, dim=0, eps=_NORM_EPS))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def dim(self) -> int:
        return self.queue.shape[0]

    @property
    def size(self) -> int:
        return self.queue.shape[1]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write the L2-normalised rows of ``keys: [N, d]`` at ``ptr`` (wrapping), then advance
        ``ptr <- (ptr + N) mod K``. No gradient is recorded; keys are detached and cast to float32.
        """
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"expected keys of shape [N, {self.dim}], got {tuple(keys.shape)}")
        n, k = keys.shape[0], self.size
        if n == 0:
            return
        kn = F.normalize(keys.detach().to(self.queue), dim=1, eps=_NORM_EPS)
        ptr = int(self.ptr)
        start = ptr
        if n > k:  # only the last K keys survive a full pass
            kn = kn[n - k :]
            start = (ptr + n - k) % k
        cols = (start + torch.arange(kn.shape[0], device=self.queue.device)) % k
        self.queue[:, cols] = kn.T
        self.ptr.fill_((ptr + n) % k)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, size={self.size}"
