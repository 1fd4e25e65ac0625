"""Laue groups, the asymmetric unit, ring integration and merging statistics, on inputs with a
known truth."""

from __future__ import annotations

import numpy as np
import pytest
from xtal.errors import CellError
from xtal.integrate import Rings, integrate
from xtal.merge import half_split, merge_observations
from xtal.simulate import render_spots
from xtal.symmetry import asymmetric_indices, default_laue_group, operators


@pytest.mark.parametrize(
    ("group", "order"), [("-1", 2), ("2/m_uab", 4), ("mmm", 8), ("4/m", 8), ("4/mmm", 16)]
)
def test_laue_groups_are_closed_groups_with_inversion(group, order):
    ops = operators(group)
    assert len(ops) == order
    assert any(np.array_equal(op, -np.eye(3)) for op in ops)
    for a in ops:
        for b in ops:
            assert any(np.array_equal(a @ b, c) for c in ops)


@pytest.mark.parametrize("group", ["-1", "2/m_uab", "mmm", "4/m", "4/mmm"])
def test_equivalent_reflections_share_one_representative(group):
    rng = np.random.default_rng(1)
    hkl = rng.integers(-9, 10, (200, 3))
    representative = asymmetric_indices(hkl, group)
    for op in operators(group):
        assert np.array_equal(asymmetric_indices(hkl @ op.T, group), representative)
    # Different orbits stay apart: the number of representatives is the number of orbits.
    orbits = {frozenset(map(tuple, (operators(group) @ h).tolist())) for h in hkl}
    assert len({tuple(r) for r in representative.tolist()}) == len(orbits)


def test_unknown_laue_group_and_lattice():
    with pytest.raises(CellError, match="not one of"):
        operators("6/mmm")
    with pytest.raises(CellError, match="not supported here"):
        default_laue_group("hexagonal")
    assert default_laue_group("monoclinic", "b") == "2/m_uab"


def test_half_split_balances_every_reflection():
    group = np.repeat(np.arange(50), np.arange(1, 51))
    half = half_split(group, np.random.default_rng(0))
    for g in range(50):
        mine = half[group == g]
        assert abs(int((mine == 0).sum()) - int((mine == 1).sum())) <= 1


def test_merging_recovers_intensities_and_cc_half_tracks_noise():
    rng = np.random.default_rng(2)
    truth = rng.exponential(100.0, 400)
    unique = np.stack([np.arange(400) % 20, np.arange(400) // 20, np.ones(400, int)], axis=1)
    picks = rng.integers(0, 400, 8000)
    ops = operators("mmm")
    hkl = np.einsum("nij,nj->ni", ops[rng.integers(0, len(ops), 8000)], unique[picks])

    def merged(noise):
        observed = truth[picks] * rng.uniform(1 - noise, 1 + noise, 8000)
        return merge_observations(hkl, observed, "mmm", seed=3)

    clean, noisy = merged(0.1), merged(1.0)
    assert clean["unique"] == 400 and clean["observations"] == 8000
    by_index = {tuple(r[:3]): r[3] for r in clean["reflections"]}
    recovered = [by_index[tuple(asymmetric_indices(u[None], "mmm")[0])] for u in unique]
    assert np.corrcoef(recovered, truth)[0, 1] > 0.99
    assert clean["cc_half"] > 0.99
    assert 0.2 < noisy["cc_half"] < clean["cc_half"]


def test_merging_nothing():
    empty = merge_observations(np.zeros((0, 3)), np.zeros(0), "4/mmm")
    assert empty["unique"] == 0 and empty["cc_half"] is None and empty["reflections"] == []


def test_ring_integration_measures_spots_and_leaves_out_hot_pixels():
    rng = np.random.default_rng(4)
    expected = np.full((64, 64), 5.0)
    fs = np.array([12.3, 30.6, 50.2, 20.5])
    ss = np.array([14.7, 30.1, 40.9, 50.5])
    photons = np.array([800.0, 200.0, 500.0, 0.0])
    render_spots(expected, fs[:3], ss[:3], photons[:3], 0.8)
    frame = rng.poisson(expected).astype(np.float32)
    frame[50, 20] = 4000.0  # a hot pixel where the fourth "reflection" is predicted
    bad = np.zeros(frame.shape, dtype=bool)
    bad[40, 50] = True  # under the third spot
    intensity, sigma, peak, background, usable = integrate(frame, bad, fs, ss, Rings())
    assert usable.tolist() == [True, True, False, False]
    assert intensity[:2] == pytest.approx(photons[:2], abs=4 * sigma[:2].max())
    assert background[:2] == pytest.approx(5.0, abs=0.6)
    assert sigma[0] > sigma[1] > 0
