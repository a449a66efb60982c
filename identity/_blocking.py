"""Candidate pairs for bulk resolution: blocking rules, block caps, shared-value detection.

Only pairs that share a blocking key are ever compared. Identifier blocks larger than the cap,
and identifier values carried by many different people, are "shared" values (a store's
phone, a family tablet, a placeholder that slipped past the blocklist): they produce no pairs
and count as missing in the comparison, so nobody is ever linked through them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from identity._compare import same_person_names


@dataclass(frozen=True)
class BlockStats:
    """What one blocking rule produced."""

    rule: str
    blocks: int
    pairs: int
    oversized_blocks: int
    oversized_records: int


def combine(*codes: np.ndarray) -> np.ndarray:
    """One int64 key from several non-negative code arrays; -1 where any part is missing."""
    key = np.zeros(codes[0].shape[0], dtype=np.int64)
    missing = np.zeros(codes[0].shape[0], dtype=bool)
    for c in codes:
        c = c.astype(np.int64)
        missing |= c < 0
        key = key * (int(c.max(initial=0)) + 1) + np.maximum(c, 0)
    key[missing] = -1
    return key


def pairs_in_blocks(
    keys: np.ndarray, cap: int
) -> tuple[np.ndarray, np.ndarray, int, int, np.ndarray]:
    """All index pairs (i < j) of records sharing a key, for blocks of 2..cap records.

    Returns (left, right, number of blocks used, number of oversized blocks, the key values
    of oversized blocks). Key -1 means "no key". Vectorised: no Python loop over blocks.
    """
    idx = np.flatnonzero(keys >= 0)
    empty = np.empty(0, dtype=np.int64)
    if idx.size < 2:
        return empty, empty, 0, 0, empty
    order = idx[np.argsort(keys[idx], kind="stable")]
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, sorted_keys.size])
    oversized = sizes > cap
    big_keys = sorted_keys[starts[oversized]]
    use = (sizes >= 2) & ~oversized
    starts, sizes = starts[use], sizes[use]
    if starts.size == 0:
        return empty, empty, 0, int(oversized.sum()), big_keys
    # Position p at offset o in a block of size s pairs with the s-1-o positions after it.
    member_start = np.repeat(starts, sizes)
    offsets = np.arange(member_start.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    positions = member_start + offsets
    follow = np.repeat(sizes, sizes) - 1 - offsets
    left_pos = np.repeat(positions, follow)
    seg_start = np.cumsum(follow) - follow
    within = np.arange(left_pos.size) - np.repeat(seg_start, follow)
    right_pos = left_pos + 1 + within
    a, b = order[left_pos], order[right_pos]
    return np.minimum(a, b), np.maximum(a, b), int(starts.size), int(oversized.sum()), big_keys


def distinct_people(
    codes: np.ndarray, first: np.ndarray, last: np.ndarray, names: np.ndarray
) -> np.ndarray:
    """Per value code: how many different people carry it, judged by their names.

    Names that `name_level` finds compatible (exact, nickname, typo, initial) or that are
    the same name with first and last swapped count as one person, so "Freya", "Fresa" and
    "F." on one email are one person while "John" and "Jane" on one landline are two.
    Records without a first name do not count. Only values carried by two or more distinct
    first names need the (Python) grouping; the grouping runs on sorted names, so it does
    not depend on row order.
    """
    n_values = int(codes.max(initial=-1)) + 1
    people = np.ones(n_values, dtype=np.int32)
    use = (codes >= 0) & (first >= 0)
    frame = pd.DataFrame({"v": codes[use], "f": first[use], "l": last[use]}).drop_duplicates()
    several = frame.groupby("v").f.transform("nunique") >= 2
    for value, group in frame[several].groupby("v"):
        pairs = sorted({(names[f], names[ln] if ln >= 0 else "") for f, ln in zip(group.f, group.l, strict=True)})
        reps: list[tuple[str, str]] = []
        for f, ln in pairs:
            if not any(same_person_names(f, ln, rf, rl) for rf, rl in reps):
                reps.append((f, ln))
        people[value] = len(reps)
    return people


def drop_shared(
    codes: np.ndarray, people: np.ndarray, *, cap: int, min_names: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Remove shared values from an identifier code array.

    A value is shared when more than `cap` records carry it or at least `min_names`
    different people do (`people`, from `distinct_people`). Returns (codes with shared
    values set to -1, per-record frequency of the record's value (>= 1), shared values,
    records affected).
    """
    has = codes >= 0
    records = np.bincount(codes[has], minlength=people.size)
    shared = (records > cap) | (people >= min_names)
    is_shared = np.zeros(codes.shape[0], dtype=bool)
    is_shared[has] = shared[codes[has]]
    freq = np.ones(codes.shape[0], dtype=np.int32)
    freq[has] = people[codes[has]]
    cleaned = np.where(is_shared, -1, codes)
    return cleaned, freq, int(shared.sum()), int(is_shared.sum())


def candidate_pairs(
    rules: dict[str, tuple[np.ndarray, int]], n: int
) -> tuple[np.ndarray, np.ndarray, list[BlockStats]]:
    """Union of the pairs of every rule (name -> (keys, cap)), deduplicated, as (left, right)
    with left < right, sorted."""
    chunks = []
    stats = []
    for name, (keys, cap) in rules.items():
        left, right, blocks, big, big_keys = pairs_in_blocks(keys, cap)
        big_records = int(np.isin(keys, big_keys).sum()) if big_keys.size else 0
        stats.append(BlockStats(name, blocks, int(left.size), big, big_records))
        chunks.append(left * n + right)
    if not chunks:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, stats
    ids = np.unique(np.concatenate(chunks))
    return ids // n, ids % n, stats
