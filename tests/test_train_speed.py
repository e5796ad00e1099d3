"""The speed-ups of the training step compute what the plain version computes: one encoder pass
over all views (only without BatchNorm, same generator draws); the CPU settings that keep the
step on oneDNN's fast paths (one memory format) and off page faults (freed memory kept)."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from cvae.config import load_preset
from cvae.data.base import to_float
from cvae.methods import build_method, resolve
from cvae.methods.base import Method
from cvae.training import allocator
from cvae.training.trainer import place

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


def _formats(t: torch.Tensor) -> str:
    cl = t.is_contiguous(memory_format=torch.channels_last)
    return f"{'CL' if cl else ''}{'C' if t.is_contiguous() else ''}" or "strided"


@pytest.mark.parametrize("preset", ["cvae-mnist-paper", "crvae-mnist-code"])
def test_every_relu_sees_one_memory_format_forward_and_backward(preset):
    """On mixed formats (a channels-last output, an NCHW gradient) a ReLU's backward runs ~40x
    slower on the CPU: every 4-d ReLU's output and incoming gradient are channels-last."""
    cfg = resolve(load_preset(preset), SHAPE)
    torch.manual_seed(0)
    method = place(build_method(cfg, SHAPE), torch.device("cpu"))
    seen: dict[str, list[str]] = {}

    def record(name: str, t: torch.Tensor) -> None:
        if t.dim() == 4:
            seen.setdefault(name, []).append(_formats(t))

    for name, module in method.model.named_modules():
        if isinstance(module, torch.nn.ReLU):
            module.register_forward_hook(lambda m, i, o, name=name: record(name, o))
            module.register_full_backward_hook(lambda m, gi, go, name=name: record(name, go[0]))
    images = torch.randint(0, 256, (16, *SHAPE), dtype=torch.uint8, generator=torch.Generator())
    method(images, torch.Generator().manual_seed(1))["loss"].backward()
    assert len(seen) >= 4  # the 4-d ReLUs of encoder and decoder
    for name, formats in seen.items():
        assert formats.count("CL") == len(formats) >= 2, (name, formats)


def test_place_makes_every_4d_parameter_channels_last_also_with_a_size_1_dimension():
    cfg = resolve(load_preset("cvae-mnist-paper"), SHAPE)
    method = place(build_method(cfg, SHAPE), torch.device("cpu"))
    weights = [p for p in method.parameters() if p.dim() == 4]
    assert any(1 in w.shape[:2] for w in weights)  # the 1-channel first and last layers
    for w in weights:
        c = w.shape[1]
        assert w.stride()[1] == 1 and w.stride()[3] == c, w.shape


def test_keep_freed_memory_serves_large_blocks_from_the_heap_and_keeps_them_after_free():
    """In a fresh process (glibc's settings are per process): with glibc's defaults a 16 MiB block
    is a fresh mmap, unmapped on free (so the next step faults it in again: ~1,500 page faults per
    MNIST step, measured); after ``keep_freed_memory()`` it comes from the heap and stays there
    once freed."""
    code = textwrap.dedent(
        """
        import ctypes, importlib.util, json, sys
        # the module alone: importing the cvae.training package would load torch (seconds)
        spec = importlib.util.spec_from_file_location("allocator", sys.argv[2])
        allocator = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(allocator)
        class Info(ctypes.Structure):  # glibc's struct mallinfo2
            _fields_ = [(n, ctypes.c_size_t) for n in (
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
            ).split()]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = Info
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        applied = allocator.keep_freed_memory() if sys.argv[1] == "keep" else None
        size = 16 * 2**20
        before = libc.mallinfo2().hblkhd
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        mapped = libc.mallinfo2().hblkhd - before
        libc.free(block)
        print(json.dumps({"applied": applied, "mapped": mapped, "kept": libc.mallinfo2().fordblks}))
        """
    )
    size = 16 * 2**20
    runs = {
        mode: json.loads(
            subprocess.run(
                [sys.executable, "-c", code, mode, allocator.__file__],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for mode in ("default", "keep")
    }
    assert runs["default"]["mapped"] >= size and runs["default"]["kept"] < size
    assert runs["keep"]["applied"] is True
    assert runs["keep"]["mapped"] == 0 and runs["keep"]["kept"] >= size


@pytest.mark.parametrize("preset", ["cvae-mnist-paper", "crvae-mnist-code"])
def test_views_augmented_in_one_call_equal_one_call_per_view(preset):
    """The views are one augmentation call over the repeated batch, with each view's parameters
    drawn in turn: bit-identical to augmenting view after view with the same generator (then the
    posterior noise of the encoded views is drawn, view after view)."""
    cfg = resolve(load_preset(preset), SHAPE)
    method = build_method(cfg, SHAPE)
    images = torch.randint(0, 256, (16, *SHAPE), dtype=torch.uint8, generator=torch.Generator())
    gen, ref_gen = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    step = method.make_step(images, gen, train=True)
    x01 = to_float(images)
    expected = [method._range(method.augment(x01, ref_gen)) for _ in range(method.num_views)]
    assert len(step.views) == method.num_views == 2
    for view, ref in zip(step.views, expected, strict=True):
        assert torch.equal(view, ref)
    views = method._encoded_views()
    assert views and set(step.noise) == set(views)
    for v in views:
        eps = torch.randn((16, cfg.model.latent_dim), generator=ref_gen)
        assert torch.equal(step.noise[v], eps)
    assert torch.equal(gen.get_state(), ref_gen.get_state())
    assert step.stacked is not None and torch.equal(step.stacked, torch.cat(expected))


@pytest.mark.parametrize(
    ("preset", "shape"),
    [
        ("cvae-mnist-paper", SHAPE),
        ("crvae-mnist-code", SHAPE),
        ("btvae-cifar10", (3, 32, 32)),
        ("infomaxvae-mnist", SHAPE),
    ],
)
def test_noise_drawn_before_the_passes_equals_noise_drawn_when_first_sampled(
    preset, shape, monkeypatch
):
    """The posterior noise of the encoded views is drawn in ``make_step`` (so that no draw breaks a
    compiled loss), in the order the terms sampled it before: losses, gradients and the
    generator's state equal a step whose views draw their noise lazily."""
    cfg = resolve(load_preset(preset), shape)
    images = torch.randint(0, 256, (8, *shape), dtype=torch.uint8, generator=torch.Generator())
    runs = []
    for lazy in (False, True):
        if lazy:
            monkeypatch.setattr(Method, "_noise", lambda *args: {})
        torch.manual_seed(0)
        method = build_method(cfg, shape)
        gen = torch.Generator().manual_seed(1)
        out = method(images, gen)
        out["loss"].backward()
        grads = [p.grad for p in method.parameters() if p.grad is not None]
        runs.append((out, grads, gen.get_state()))
    (out, grads, state), (lazy_out, lazy_grads, lazy_state) = runs
    assert out.keys() == lazy_out.keys() and all(torch.equal(out[k], lazy_out[k]) for k in out)
    assert all(map(torch.equal, grads, lazy_grads)) and torch.equal(state, lazy_state)


@pytest.mark.integration
@pytest.mark.parametrize("preset", ["cvae-mnist-paper", "crvae-mnist"])
def test_compiled_loss_trains_as_eager_and_compiles_once(preset):
    """``train.compile``: full training batches run the loss through ``torch.compile``, compiled
    once (CVAE: one graph; CR-VAE's InfoNCE term, with its in-place queue, runs eagerly between
    graphs): a schedule moving a weight every step does not recompile it, and the last partial
    batch and validation run eagerly. Losses, weights and validation equal eager training up to
    float rounding."""
    from torch._dynamo.utils import counters

    from cvae.training.trainer import build_optimizer, train_step, validate

    cfg = resolve(load_preset(preset), SHAPE)
    cfg.loss.schedules = {"kl": "linear:10"}  # the KL weight changes every step
    images = torch.randint(0, 256, (72, *SHAPE), dtype=torch.uint8, generator=torch.Generator())
    torch._dynamo.reset()
    counters.clear()
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        method = place(build_method(cfg, SHAPE), torch.device("cpu"))
        if compiled:
            method.compile_loss(32)
        optimizer = build_optimizer(cfg.train, method.parameters())
        gen = torch.Generator().manual_seed(0)
        losses = []
        for i, batch in enumerate([*images.split(32)] * 2):  # 32, 32, 8 (partial), twice
            method.epoch_progress = 0.1 + i / 3
            off = torch.autocast("cpu", enabled=False)
            losses.append(train_step(method, optimizer, batch, gen, 1.0, off)["loss"].detach())
            if i == 0:
                compiled_frames = counters["frames"]["total"]  # the first step compiled them all
        weights = torch.cat([p.detach().flatten() for p in method.parameters()])
        runs.append((torch.stack(losses), weights, validate(method, images[:40], 32, 0)))
    assert counters["frames"]["total"] == compiled_frames > 0  # none recompiled
    if preset == "cvae-mnist-paper":
        assert counters["stats"]["unique_graphs"] == 1  # no graph break
    (losses, weights, val), (c_losses, c_weights, c_val) = runs
    torch.testing.assert_close(c_losses, losses, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c_weights, weights, rtol=1e-4, atol=1e-6)
    assert val.keys() == c_val.keys()
    assert all(abs(val[k] - c_val[k]) <= 1e-5 * (1 + abs(val[k])) for k in val)
