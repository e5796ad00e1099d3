"""Batched augmentations: parameter statistics, single ops against hand-computed results,
determinism, and torchvision's colour formulas as a per-image reference."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from cvae.augmentations import PRESETS, AugmentConfig, AugmentParams, BatchAugment, build_augment
from cvae.augmentations.color import adjust_hue_
from cvae.augmentations.geometry import affine_grid
from cvae.errors import ConfigError

N = 4000  # draws for parameter statistics


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def fixed(augment: BatchAugment, x: torch.Tensor, **values: object) -> AugmentParams:
    """Neutral parameters for ``x``'s batch with some fields replaced (broadcast to the batch)."""
    b, _, h, w = x.shape
    neutral = BatchAugment(AugmentConfig()).sample_params(b, h, w, gen())
    values = {k: torch.as_tensor(v).expand_as(getattr(neutral, k)) for k, v in values.items()}
    return dataclasses.replace(neutral, **values)


# ----------------------------------------------------------------------------------------------
# Config, presets, errors


def test_presets_build_and_unknown_name_lists_valid_ones() -> None:
    for name, config in PRESETS.items():
        assert build_augment(name).config == config
    assert build_augment(PRESETS["cvae-cifar"]).config.jitter == (0.4, 0.4, 0.4, 0.1)
    with pytest.raises(ConfigError, match="cvae-mnist") as err:
        build_augment("simclr")
    assert "\n" not in str(err.value) and "none" in str(err.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"crop_scale": (0.5, 0.2)},
        {"crop_scale": (0.0, 1.0)},
        {"crop_scale": (0.5, 1.5)},
        {"crop_scale": (0.5,)},
        {"crop_ratio": (2.0, 1.0)},
        {"rotation": -1.0},
        {"rotation": float("nan")},
        {"translate": (1.5, 0.0)},
        {"hflip": 1.5},
        {"jitter_p": -0.1},
        {"grayscale": True},
        {"jitter": (0.4, 0.4, 0.4, 0.6)},
        {"jitter": (-0.1, 0.0, 0.0, 0.0)},
        {"jitter": (0.4, 0.4, 0.4)},
    ],
)
def test_bad_config_raises_one_line_config_error(bad: dict) -> None:
    with pytest.raises(ConfigError) as err:
        AugmentConfig(**bad)
    message = str(err.value)
    assert "\n" not in message and f"augment.{next(iter(bad))}" in message


def test_yaml_lists_become_tuples() -> None:
    config = AugmentConfig(crop_scale=[0.2, 1.0], jitter=[0.4, 0.4, 0.4, 0.1], hflip=0.5)
    assert config == AugmentConfig(crop_scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), hflip=0.5)


def test_bad_input_raises_value_error() -> None:
    augment = build_augment("cvae-cifar")
    with pytest.raises(ValueError, match="float"):
        augment(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), gen())
    with pytest.raises(ValueError, match="channels"):
        augment(torch.zeros(2, 2, 8, 8), gen())


# ----------------------------------------------------------------------------------------------
# Parameter statistics


def reference_crop(height: int, width: int, scale, ratio, g: torch.Generator) -> tuple[int, ...]:
    """torchvision RandomResizedCrop.get_params, scalar, for one image."""
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        area = height * width * torch.empty(1).uniform_(*scale, generator=g).item()
        aspect = math.exp(torch.empty(1).uniform_(*log_ratio.tolist(), generator=g).item())
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=g))
            left = int(torch.randint(0, width - w + 1, (1,), generator=g))
            return top, left, h, w
    return (0, 0, height, width)  # square images: the centre-crop fallback is the whole image


@pytest.mark.parametrize(("preset", "size"), [("cvae-mnist", 28), ("cvae-cifar", 32)])
def test_crop_boxes_are_whole_pixels_inside_and_match_torchvision(preset: str, size: int) -> None:
    config = PRESETS[preset]
    crop = build_augment(preset).sample_params(N, size, size, gen()).crop
    top, left, h, w = crop.unbind(1)
    assert torch.equal(crop, crop.round())
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= size).all() and (left + w <= size).all()
    area = h * w / size**2
    lo, hi = config.crop_scale
    assert area.min() >= lo - 0.05 and area.max() <= hi
    ratio = (w / h).log()
    assert ratio.min() >= math.log(3 / 4) - 0.1 and ratio.max() <= math.log(4 / 3) + 0.1
    g = gen(1)
    ref = torch.tensor(
        [reference_crop(size, size, config.crop_scale, config.crop_ratio, g) for _ in range(N)]
    ).double()
    ref_area = ref[:, 2] * ref[:, 3] / size**2
    # same distribution: means within 4 standard errors; centres uniform over valid positions
    se = math.hypot(area.std().item(), ref_area.std().item()) / math.sqrt(N)
    assert abs(area.mean().item() - ref_area.mean().item()) < 4 * se
    assert abs(area.mean().item() - (lo + hi) / 2) < 0.06  # roughly the uniform mean
    centre_x = (left + w / 2 - size / 2) / size
    assert abs(centre_x.mean().item()) < 0.01


def test_crop_falls_back_to_torchvision_centre_crop() -> None:
    # On a 4x40 image no near-square box of 90-100% of the area fits, so all 10 tries fail and
    # torchvision takes the full height with the widest allowed ratio, centred: h=4, w=round(16/3).
    augment = BatchAugment(AugmentConfig(crop_scale=(0.9, 1.0)))
    crop = augment.sample_params(16, 4, 40, gen()).crop
    assert torch.equal(crop, torch.tensor([0.0, 17.0, 4.0, 5.0]).expand(16, 4))


def test_rotation_translation_flip_grayscale_jitter_statistics() -> None:
    config = AugmentConfig(
        rotation=15.0,
        translate=(0.1, 0.1),
        hflip=0.5,
        jitter=(0.4, 0.4, 0.4, 0.1),
        grayscale=0.2,
    )
    p = BatchAugment(config).sample_params(N, 28, 28, gen())
    assert p.angle.abs().max() <= 15
    assert abs(p.angle.mean().item()) < 4 * 15 / math.sqrt(3 * N)
    assert p.angle.std().item() == pytest.approx(15 / math.sqrt(3), rel=0.05)
    assert torch.equal(p.shift, p.shift.round()) and p.shift.abs().max() == 3  # round(2.8)
    assert set(p.shift.flatten().tolist()) == {-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0}
    assert p.shift.mean(0).abs().max() < 0.1
    assert p.flip.float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert p.gray.float().mean().item() == pytest.approx(0.2, abs=0.025)
    factors, hue = p.jitter[:, :3], p.jitter[:, 3]
    assert factors.min() >= 0.6 and factors.max() <= 1.4 and hue.abs().max() <= 0.1
    assert factors.mean(0).sub(1).abs().max() < 0.01 and hue.mean().abs() < 0.003
    assert torch.equal(p.order.sort(1).values, torch.arange(4).expand(N, 4))
    first_op_rate = F.one_hot(p.order[:, 0], 4).float().mean(0)
    assert torch.allclose(first_op_rate, torch.full((4,), 0.25), atol=0.03)


def test_jitter_p_leaves_the_rest_neutral() -> None:
    config = AugmentConfig(jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8)
    jitter = BatchAugment(config).sample_params(N, 8, 8, gen()).jitter
    neutral = (jitter == torch.tensor([1.0, 1.0, 1.0, 0.0])).all(1)
    assert neutral.float().mean().item() == pytest.approx(0.2, abs=0.025)


def test_images_in_a_batch_are_independent() -> None:
    augment = build_augment("cvae-mnist")
    p = augment.sample_params(N, 28, 28, gen())
    for values in (p.angle, p.shift[:, 0], p.crop[:, 2] * p.crop[:, 3]):
        pair = torch.stack([values[:-1], values[1:]]).double()
        assert abs(torch.corrcoef(pair)[0, 1].item()) < 0.06
    assert abs(torch.corrcoef(torch.stack([p.angle, p.shift[:, 0]]))[0, 1].item()) < 0.06
    x = torch.rand(1, 1, 28, 28, generator=gen(1)).expand(16, 1, 28, 28)
    out = augment(x, gen()).flatten(1)
    assert torch.cdist(out, out).add(torch.eye(16)).min() > 0.1  # all 16 views differ


# ----------------------------------------------------------------------------------------------
# Whole pipelines


def test_identity_returns_input_itself_without_drawing() -> None:
    g = gen()
    x = torch.rand(3, 1, 5, 5)
    assert build_augment("none")(x, g) is x
    assert torch.equal(g.get_state(), gen().get_state())


@pytest.mark.parametrize("preset", ["cvae-mnist", "cvae-cifar"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_pipelines_keep_shape_dtype_device_and_range(preset: str, dtype: torch.dtype) -> None:
    channels = 1 if preset == "cvae-mnist" else 3
    x = torch.rand(64, channels, 12, 10, generator=gen(1), dtype=dtype)
    x[:8] = 1.0  # saturated images stress the clamps
    before = x.clone()
    out = build_augment(preset)(x, gen())
    assert torch.equal(x, before)  # the input is left alone
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)


@pytest.mark.parametrize("preset", ["cvae-mnist", "cvae-cifar"])
def test_same_seed_same_output(preset: str) -> None:
    augment = build_augment(preset)
    x = torch.rand(32, 1 if preset == "cvae-mnist" else 3, 16, 16, generator=gen(1))
    assert torch.equal(augment(x, gen(7)), augment(x, gen(7)))
    assert not torch.equal(augment(x, gen(7)), augment(x, gen(8)))
    g = gen(7)  # consecutive batches from one generator differ, and replay from its state
    state = g.get_state()
    first, second = augment(x, g), augment(x, g)
    assert not torch.equal(first, second)
    g.set_state(state)
    assert torch.equal(augment(x, g), first)


@pytest.mark.parametrize(
    "config",
    [PRESETS["cvae-mnist"], PRESETS["crvae"], AugmentConfig(hflip=0.5, rotation=10.0)],
    ids=["cvae-mnist", "crvae", "no-crop"],
)
def test_views_drawn_together_equal_views_drawn_one_call_each(config: AugmentConfig) -> None:
    """``views=3`` draws each view's numbers in turn, as 3 calls would: the same parameters, the
    same generator state after (a CPU generator fills a tensor serially)."""
    augment = BatchAugment(config)
    together, apart = gen(5), gen(5)
    params = augment.sample_params(7, 20, 24, together, views=3)
    parts = [augment.sample_params(7, 20, 24, apart) for _ in range(3)]
    for f in dataclasses.fields(params):
        expected = torch.cat([getattr(p, f.name) for p in parts])
        assert torch.equal(getattr(params, f.name), expected), f.name
    assert torch.equal(together.get_state(), apart.get_state())
    fields = [f.name for f in dataclasses.fields(params)]
    assert any(not torch.equal(getattr(parts[0], f), getattr(parts[1], f)) for f in fields)


def test_colour_only_config_leaves_input_alone() -> None:
    x = torch.rand(8, 3, 6, 6, generator=gen(1))
    before = x.clone()
    out = BatchAugment(AugmentConfig(jitter=(0.4, 0.4, 0.4, 0.1), grayscale=0.5))(x, gen())
    assert torch.equal(x, before) and not torch.equal(out, x)


def test_params_land_on_requested_device() -> None:
    p = build_augment("cvae-cifar").sample_params(4, 8, 8, gen(), device="meta")
    assert all(getattr(p, f.name).device.type == "meta" for f in dataclasses.fields(p))


# ----------------------------------------------------------------------------------------------
# Single geometric ops


def test_affine_grid_equals_torch_affine_grid() -> None:
    theta = torch.randn(4, 2, 3, generator=gen(1))
    expected = F.affine_grid(theta, [4, 1, 5, 7], align_corners=False)
    torch.testing.assert_close(affine_grid(theta, 5, 7), expected)


def test_flip_equals_torch_flip() -> None:
    x = torch.arange(6.0).view(1, 1, 2, 3) / 6
    augment = BatchAugment(AugmentConfig(hflip=1.0))
    torch.testing.assert_close(augment(x, gen()), x.flip(-1))


def test_rotation_by_90_degrees_equals_rot90() -> None:
    x = torch.rand(2, 3, 5, 5, generator=gen(1))
    augment = BatchAugment(AugmentConfig(rotation=90.0))
    out = augment.apply(x, fixed(augment, x, angle=90.0))
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(-2, -1)))  # counter-clockwise


def test_translation_moves_whole_pixels_and_fills_zeros() -> None:
    x = torch.rand(2, 1, 5, 7, generator=gen(1))
    augment = BatchAugment(AugmentConfig(translate=(0.5, 0.5)))
    out = augment.apply(x, fixed(augment, x, shift=torch.tensor([1.0, 2.0])))  # right 1, down 2
    expected = torch.zeros_like(x)
    expected[..., 2:, 1:] = x[..., :-2, :-1]
    torch.testing.assert_close(out, expected)


def test_crop_resize_equals_bilinear_resize_of_the_crop() -> None:
    x = torch.rand(2, 3, 4, 6, generator=gen(1))
    augment = BatchAugment(AugmentConfig(crop_scale=(0.1, 1.0)))
    out = augment.apply(x, fixed(augment, x, crop=torch.tensor([0.0, 0.0, 2.0, 3.0])))
    expected = F.interpolate(x[..., :2, :3], size=(4, 6), mode="bilinear", align_corners=False)
    # Samples clamp at the image border like resize clamps at the crop border; only the last
    # row/column, which sees pixels just outside the crop, differs from torchvision.
    torch.testing.assert_close(out[..., :-1, :-1], expected[..., :-1, :-1])


def test_geometric_ops_compose_in_order_crop_flip_rotate_translate() -> None:
    block = torch.rand(2, 1, 3, 3, generator=gen(1))
    # Replicating the crop's edge around it makes reading past the crop equal clamping to it.
    x = F.pad(block, (1, 2, 1, 2), mode="replicate")
    config = AugmentConfig(crop_scale=(0.1, 1.0), rotation=90.0, translate=(0.5, 0.5), hflip=1.0)
    augment = BatchAugment(config)
    params = fixed(
        augment,
        x,
        crop=torch.tensor([1.0, 1.0, 3.0, 3.0]),
        flip=torch.tensor(True),
        angle=90.0,
        shift=torch.tensor([1.0, 0.0]),
    )
    resized = F.interpolate(block, size=(6, 6), mode="bilinear", align_corners=False)
    rotated = torch.rot90(resized.flip(-1), 1, dims=(-2, -1))
    expected = F.pad(rotated, (1, 0))[..., :-1]  # one pixel right, zeros enter on the left
    torch.testing.assert_close(augment.apply(x, params), expected)


# ----------------------------------------------------------------------------------------------
# Single colour ops, and torchvision's tensor formulas as the reference


def tv_gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def tv_rgb2hsv(img: torch.Tensor) -> torch.Tensor:
    r, g, b = img.unbind(dim=-3)
    maxc, minc = img.max(dim=-3).values, img.min(dim=-3).values
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_divisor = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / cr_divisor, (maxc - g) / cr_divisor, (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def tv_hsv2rgb(img: torch.Tensor) -> torch.Tensor:
    h, s, v = img.unbind(dim=-3)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(dtype=torch.int32) % 6
    p = torch.clamp(v * (1.0 - s), 0.0, 1.0)
    q = torch.clamp(v * (1.0 - s * f), 0.0, 1.0)
    t = torch.clamp(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    mask = i.unsqueeze(dim=-3) == torch.arange(6).view(-1, 1, 1)
    a1 = torch.stack((v, q, p, p, t, v), dim=-3)
    a2 = torch.stack((t, v, v, q, p, p), dim=-3)
    a3 = torch.stack((p, p, t, v, v, q), dim=-3)
    return torch.einsum(
        "...ijk, ...xijk -> ...xjk", mask.to(img.dtype), torch.stack((a1, a2, a3), -4)
    )


def tv_color_jitter(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """torchvision's ColorJitter on tensors, one image at a time, ops in the given order."""

    def blend(img: torch.Tensor, ref: torch.Tensor, f: float) -> torch.Tensor:
        return (f * img + (1.0 - f) * ref).clamp(0.0, 1.0)

    out = []
    for img, (b, c, s, h), ops in zip(x.split(1), factors.tolist(), order.tolist(), strict=True):
        rgb = img.shape[1] == 3
        for op in ops:
            grey = tv_gray(img) if rgb else img
            if op == 0:
                img = blend(img, torch.zeros_like(img), b)
            elif op == 1:
                img = blend(img, grey.mean(dim=(-3, -2, -1), keepdim=True), c)
            elif op == 2 and rgb:
                img = blend(img, grey, s)
            elif op == 3 and rgb:
                hsv = tv_rgb2hsv(img)
                hsv = torch.stack([(hsv[:, 0] + h) % 1.0, hsv[:, 1], hsv[:, 2]], dim=1)
                img = tv_hsv2rgb(hsv)
        out.append(img)
    return torch.cat(out)


JITTER = AugmentConfig(jitter=(0.4, 0.4, 0.4, 0.1))


def test_brightness_factor_multiplies_and_clamps() -> None:
    x = torch.rand(3, 3, 4, 4, generator=gen(1))
    params = fixed(BatchAugment(JITTER), x, jitter=torch.tensor([1.5, 1.0, 1.0, 0.0]))
    torch.testing.assert_close(BatchAugment(JITTER).apply(x, params), (1.5 * x).clamp(0, 1))


def test_grayscale_equals_luma_in_every_channel() -> None:
    x = torch.rand(3, 3, 4, 4, generator=gen(1))
    augment = BatchAugment(AugmentConfig(grayscale=1.0))
    torch.testing.assert_close(augment(x, gen()), tv_gray(x).expand_as(x))
    grey1 = torch.rand(3, 1, 4, 4)
    assert torch.equal(augment(grey1, gen()), grey1)


def test_hue_zero_is_identity_and_third_turn_maps_red_to_green_to_blue() -> None:
    x = torch.rand(2, 3, 4, 4, generator=gen(1))
    assert torch.equal(adjust_hue_(x.clone(), torch.zeros(2)), x)
    red, green, blue = torch.eye(3).view(3, 3, 1, 1)
    third = torch.full((1,), 1 / 3)
    torch.testing.assert_close(adjust_hue_(red[None].clone(), third), green[None])
    torch.testing.assert_close(adjust_hue_(green[None].clone(), third), blue[None])


def test_hue_matches_torchvision_round_trip() -> None:
    x = torch.rand(8, 3, 6, 6, generator=gen(1))
    x[0] = x[0, :1]  # grey pixels
    x[1, 1] = x[1, 0]  # ties between max channels
    shift = torch.linspace(-0.5, 0.5, 8)
    hsv = tv_rgb2hsv(x)
    hsv = torch.stack([(hsv[:, 0] + shift.view(-1, 1, 1)) % 1.0, hsv[:, 1], hsv[:, 2]], dim=1)
    torch.testing.assert_close(adjust_hue_(x.clone(), shift), tv_hsv2rgb(hsv), atol=1e-5, rtol=0)


@pytest.mark.parametrize("channels", [3, 1])
def test_jitter_matches_per_image_torchvision_in_all_24_orders(channels: int) -> None:
    orders = torch.tensor(list(itertools.permutations(range(4))))
    x = torch.rand(24, channels, 6, 6, generator=gen(1))
    augment = BatchAugment(AugmentConfig(jitter=(0.8, 0.8, 0.8, 0.5)))
    params = augment.sample_params(24, 6, 6, gen(2))
    params = dataclasses.replace(params, order=orders)
    expected = tv_color_jitter(x, params.jitter, orders)
    torch.testing.assert_close(augment.apply(x, params), expected, atol=1e-5, rtol=0)


def test_jitter_without_hue_matches_reference() -> None:
    augment = BatchAugment(AugmentConfig(jitter=(0.8, 0.8, 0.8, 0.0)))
    x = torch.rand(24, 3, 6, 6, generator=gen(1))
    params = augment.sample_params(24, 6, 6, gen(2))
    expected = tv_color_jitter(x, params.jitter, params.order)
    torch.testing.assert_close(augment.apply(x, params), expected, atol=1e-5, rtol=0)


def test_unjittered_images_are_unchanged() -> None:
    augment = BatchAugment(AugmentConfig(jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.5))
    x = torch.rand(64, 3, 4, 4, generator=gen(1))
    params = augment.sample_params(64, 4, 4, gen())
    kept = (params.jitter == torch.tensor([1.0, 1.0, 1.0, 0.0])).all(1)
    out = augment.apply(x, params)
    assert 0 < kept.sum() < 64
    assert torch.equal(out[kept], x[kept]) and not torch.equal(out[~kept], x[~kept])


@pytest.mark.parametrize(
    ("method", "views"), [("cvae", "cvae-mnist"), ("crvae", "crvae"), ("simclr", "simclr-cifar")]
)
def test_auto_views_fit_the_image_size(method: str, views: str) -> None:
    from cvae.augmentations.config import fits
    from cvae.config import RunConfig
    from cvae.methods import resolve
    from cvae.methods.resolve import num_views

    cfg = RunConfig(method=method)
    small = resolve(cfg, (1, 8, 8))  # 8x8 digits: the 28-pixel views do not fit
    assert num_views(small) == 2 and small.data.augment == "none"
    assert resolve(cfg, (1, 28, 28)).data.augment == views
    assert fits("cvae-mnist", 14) and not fits("cvae-mnist", 13) and fits("none", 1)
    cfg.data.augment = "crvae"  # named explicitly: kept (its ops are fractions of the image)
    assert resolve(cfg, (1, 8, 8)).data.augment == "crvae"
