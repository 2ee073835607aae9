"""The automatic region of `psf_estimate`: edges above the noise, in both directions, no clipped highlights, not
at the frame's border (pyops.ops.deconv.region)."""
from __future__ import annotations

import numpy as np
import pytest

from pyops.ops.deconv.region import detail_region


def _scene(seed: int = 0) -> np.ndarray:
    """A 600×900 grey frame with four 200×200 candidates, left to right: bright shapes with a clipped lamp, a
    dark patch of heavy noise, clean shapes with edges in every direction, and vertical stripes only."""
    rng = np.random.default_rng(seed)
    img = np.full((600, 900), 0.3)
    yy, xx = np.mgrid[:200, :200]

    def shapes(strength: float) -> np.ndarray:
        tile = np.zeros((200, 200))
        for _ in range(12):
            y, x, r = rng.integers(20, 180, 2).tolist() + [int(rng.integers(8, 25))]
            tile[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = strength * rng.uniform(0.5, 1)
        return tile

    img[200:400, 20:220] += shapes(0.6)
    img[290:310, 110:130] = 1.0  # a clipped lamp in the strongest detail
    img[200:400, 240:440] = 0.02 + rng.normal(0, 0.05, (200, 200))  # dark and very noisy
    img[200:400, 460:660] += shapes(0.4)
    img[200:400, 680:880] += 0.5 * (np.sin(xx / 3) > 0)  # strong edges, one direction only
    img += rng.normal(0, 0.003, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def _centre(region):
    x, y, w, h = region
    return x + w // 2, y + h // 2


def test_the_automatic_region_takes_clean_two_way_detail():
    x, y = _centre(detail_region(_scene(), 200))
    assert 460 <= x < 660 and 200 <= y < 400, (x, y)


def test_without_the_lamp_the_brightest_detail_wins():
    img = _scene()
    img[290:310, 110:130] = img[280:300, 90:110]  # the lamp gone: the stronger shapes are the best place
    x, y = _centre(detail_region(img, 200))
    assert 20 <= x < 220 and 200 <= y < 400, (x, y)


@pytest.mark.parametrize("shape", [(600, 900), (600, 900, 3)])
def test_the_region_keeps_out_of_the_border_and_fits_small_images(shape):
    img = np.zeros(shape, np.float32) + 0.3
    img[:200, :200] += 0.5 * (np.indices((200, 200)).sum(0) % 17 < 8)[..., None].squeeze() if len(shape) == 2 \
        else 0.5 * (np.indices((200, 200)).sum(0) % 17 < 8)[..., None]
    x, y, w, h = detail_region(img, 200)
    assert (w, h) == (200, 200) and x >= 18 and y >= 18  # 3 % of the short side
    assert detail_region(img[:100, :150], 512) == (0, 0, 150, 100)  # smaller than the window: all of it
