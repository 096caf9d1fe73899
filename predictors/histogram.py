"""Decaying-histogram percentile (VPA-style): a flat forecast at a percentile of the history,
where each sample's weight halves every ``half_life`` steps.

Peaks in memory-like signals matter more than their shape, and a percentile of a decaying
histogram follows a new regime quickly while remembering older peaks for a while. To keep
a batch cheap, the histogram's bins are the sorted values of an evenly spaced sample of
the history (at most ``MAX_BINS`` of them), each carrying the weight of the steps it stands for.
"""
from __future__ import annotations

import numpy as np

MAX_BINS = 96


def decaying_percentile(values: np.ndarray, origins: np.ndarray, half_life: float,
                        percentile: float) -> np.ndarray:
    """The weighted ``percentile`` of ``values[:, :o]`` for each origin o: [n, len(origins)]."""
    length = values.shape[1]
    stride = max(1, -(-length // MAX_BINS))
    # sample backwards from the newest point so the newest data is always in
    sample_at = np.arange(length - 1, -1, -stride)[::-1]
    samples = np.take(values, sample_at, axis=1)
    order = np.argsort(samples, axis=1)  # equal values tie: any order of them gives the same percentile
    sorted_samples = np.take_along_axis(samples, order, axis=1)
    # Seen from origin o, sample t weighs 0.5 ** ((o - 1 - t) / half_life); the factor in o is
    # common to all samples and cancels in a percentile, so t's weight is fixed and only the
    # set of samples before o matters, which changes once per sampling stride.
    # in float32, half the memory for the cumulative sums to stream through; relative to the
    # earliest origin, so that only samples over 100 half-lives before it, which weigh
    # nothing beside the ones after it, can underflow
    weight = np.exp2((sample_at - origins[0]) / half_life).astype(np.float32)[order]  # [n, S]
    seen_counts, origin_to_set = np.unique(np.searchsorted(sample_at, origins), return_inverse=True)
    seen = order[:, None, :] < seen_counts[None, :, None]  # sample_at ascending: index < count
    cumulative = np.cumsum(seen * weight[:, None, :], axis=2)
    target = percentile * cumulative[:, :, -1:]
    index = np.argmax(cumulative >= target, axis=2)  # [n, sets]
    return np.take(np.take_along_axis(sorted_samples, index, axis=1), origin_to_set, axis=1)
