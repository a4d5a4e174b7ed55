"""The history chart's duration axis (`present.duration_ticks`, `tick_label`): 3 to 5 ticks from 0 to a round top at
or above the longest run, each labelled in one unit people read."""

from __future__ import annotations

import re

import pytest

from runtracker.web import present

TOPS = [0, 1, 7, 144, 999, 1000, 1001, 4200, 29_999, 59_000, 61_000, 480_000, 660_000, 3_599_999, 4 * 3_600_000,
        25 * 3_600_000, 9 * 86_400_000, 100 * 86_400_000, 10**12]


@pytest.mark.parametrize("top", TOPS + list(range(1, 20_000, 997)) + list(range(60_000, 7_200_000, 98_765)))
def test_the_axis_has_3_to_5_evenly_spaced_ticks_from_0_to_at_least_the_top(top):
    ticks = present.duration_ticks(top)
    assert 3 <= len(ticks) <= 5, ticks
    assert ticks[0] == 0 and ticks[-1] >= top
    assert ticks[-2] < top or len(ticks) == 3  # a top within one step: still 3 ticks
    assert len({b - a for a, b in zip(ticks, ticks[1:], strict=False)}) == 1


@pytest.mark.parametrize("top", TOPS)
def test_every_tick_label_is_a_number_and_one_unit(top):
    labels = [present.tick_label(t) for t in present.duration_ticks(top)]
    assert labels[0] == "0"
    for label in labels[1:]:
        assert re.fullmatch(r"\d+(\.5)? (ms|s|min|h|d)", label), label


@pytest.mark.parametrize(("ms", "label"), [(500, "500 ms"), (1000, "1 s"), (15_000, "15 s"), (90_000, "1.5 min"),
                                           (600_000, "10 min"), (3_600_000, "1 h"), (10_800_000, "3 h"),
                                           (172_800_000, "2 d")])
def test_tick_labels(ms, label):
    assert present.tick_label(ms) == label
