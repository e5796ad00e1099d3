"""The speed-ups of the training step compute what the plain version computes: one encoder pass
over all views (only without BatchNorm, same generator draws)."""

import torch

from cvae.config import load_preset
from cvae.methods import build_method, resolve

SHAPE = (1, 28, 28)


def _step(preset: str, fusable: bool | None):
    cfg = resolve(load_preset(preset), SHAPE)
    torch.manual_seed(0)
    method = build_method(cfg, SHAPE)
    if fusable is not None:
        method.fusable = fusable
    images = torch.randint(0, 256, (8, *SHAPE), dtype=torch.uint8, generator=torch.Generator())
    gen = torch.Generator().manual_seed(1)
    out = method(images, gen)
    out["loss"].backward()
    grads = [p.grad.clone() for p in method.parameters() if p.grad is not None]
    return method, out, grads, gen.get_state()


def test_one_encoder_pass_over_both_views_matches_separate_passes():
    fused, out_f, grads_f, state_f = _step("cvae-mnist-paper", True)
    plain, out_p, grads_p, state_p = _step("cvae-mnist-paper", False)
    assert fused.make_step(torch.zeros(2, *SHAPE, dtype=torch.uint8), torch.Generator(), True).fuse
    assert torch.equal(state_f, state_p)  # the same draws, in the same order
    for key in out_p:
        torch.testing.assert_close(out_f[key], out_p[key], rtol=1e-5, atol=1e-6)
    for a, b in zip(grads_f, grads_p, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_batchnorm_encoder_is_never_fused():
    cfg = resolve(load_preset("cvae-mnist-paper"), SHAPE)
    cfg.model.batchnorm = True
    method = build_method(cfg, SHAPE)
    assert not method.fusable
    step = method.make_step(torch.zeros(4, *SHAPE, dtype=torch.uint8), torch.Generator(), True)
    assert step.fuse == ()
