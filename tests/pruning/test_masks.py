"""Magnitude and N:M masks (numpy only)."""

import numpy as np
import pytest

from edgekeras.errors import InputError
from edgekeras.pruning.masks import check_n_m, magnitude_mask, n_m_mask, parse_structure
from edgekeras.pruning.registry import einsum_input_axes


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.8, 0.95])
def test_magnitude_mask_zeroes_exactly_the_smallest(sparsity):
    w = np.random.default_rng(0).normal(size=(3, 3, 5, 7)).astype("float32")
    mask = magnitude_mask(w, sparsity)
    k = round(sparsity * w.size)
    assert mask.shape == w.shape and int((mask == 0).sum()) == k
    if 0 < k < w.size:
        assert np.abs(w[mask == 0]).max() <= np.abs(w[mask == 1]).min()


def test_magnitude_mask_with_ties_still_exact():
    w = np.zeros((10, 10), dtype="float32")
    w[0, :3] = 1.0
    assert int((magnitude_mask(w, 0.5) == 0).sum()) == 50
    assert int((magnitude_mask(w, 0.98) == 0).sum()) == 98  # zeros first, then the smallest ones


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "0.5", True])
def test_sparsity_outside_range_is_refused(bad):
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        magnitude_mask(np.ones(4), bad)


def test_dense_n_m_along_input_channels():
    w = np.random.default_rng(1).normal(size=(16, 6)).astype("float32")  # (in, out)
    mask = n_m_mask(w, 2, 4, (0,))
    groups = mask.reshape(4, 4, 6)  # 4 groups of 4 input channels per output
    assert np.all(groups.sum(axis=1) == 2)
    kept = np.abs(w).reshape(4, 4, 6)
    for g in range(4):
        for o in range(6):
            top2 = set(np.argsort(kept[g, :, o])[-2:])
            assert set(np.flatnonzero(groups[g, :, o])) == top2


def test_conv_n_m_along_in_axis():
    w = np.random.default_rng(2).normal(size=(3, 3, 8, 5)).astype("float32")
    mask = n_m_mask(w, 1, 4, (-2,))
    assert mask.shape == w.shape
    assert np.all(mask.reshape(3, 3, 2, 4, 5).sum(axis=3) == 1)
    assert np.isclose(1 - mask.mean(), 0.75)


def test_n_m_over_several_axes_flattens_them():
    w = np.random.default_rng(3).normal(size=(4, 2, 6)).astype("float32")  # (heads, key_dim, out)
    mask = n_m_mask(w, 2, 4, (0, 1))
    assert np.all(mask.reshape(2, 4, 6).sum(axis=1) == 2)


def test_structure_parsing_and_validation():
    assert str(parse_structure("2:4")) == "2:4" and parse_structure("2:4").sparsity == 0.5
    assert parse_structure("unstructured").kind == "unstructured"
    for bad in ("4:4", "3:2", "0:4", "2-4", "dense"):
        with pytest.raises(InputError):
            parse_structure(bad)


def test_m_must_divide_input_channels():
    with pytest.raises(InputError, match=r"'conv/kernel'.*M=4.*Received: 6 channels"):
        check_n_m((3, 3, 6, 8), (-2,), 2, 4, "conv/kernel")
    check_n_m((3, 3, 8, 8), (-2,), 2, 4, "conv/kernel")


def test_einsum_input_axes():
    assert einsum_input_axes("abc,cde->abde") == (0,)  # MHA query projection
    assert einsum_input_axes("abcd,cde->abe") == (0, 1)  # MHA output projection
    assert einsum_input_axes("ab,bc->ac") == (0,)
