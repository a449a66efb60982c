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


def _compatible(keys: np.ndarray, vocab: np.ndarray) -> np.ndarray:
    """same_person_names for rows of (first, last, first, last) name codes (-1 = none),
    computed once per distinct row."""
    if keys.shape[0] == 0:
        return np.ones(0, dtype=bool)
    columns = [keys[:, i] for i in range(4)]
    key_codes, uniq = pd.factorize(row_key(*columns))
    firsts = np.full(len(uniq), -1, dtype=np.int64)
    firsts[key_codes[::-1]] = np.arange(key_codes.size)[::-1]
    text = np.append(vocab, "")  # code -1 reads ""
    names = [text[c[firsts]] for c in columns]
    ok = np.array([same_person_names(*row) for row in zip(*names, strict=True)], dtype=bool)
    return ok[key_codes]


def row_key(*codes: np.ndarray) -> np.ndarray:
    """One int64 per row of several code arrays (-1 allowed), for hashing distinct rows."""
    key = np.zeros(codes[0].size, dtype=np.int64)
    for c in codes:
        part_codes, part = pd.factorize(c)
        key = pd.factorize(key * (len(part) + 1) + part_codes)[0].astype(np.int64)
    return key


def name_conflicts(
    group: np.ndarray, first: np.ndarray, last: np.ndarray, vocab: np.ndarray
) -> tuple[np.ndarray, pd.DataFrame]:
    """Groups (identifier values, clusters) holding two records whose names cannot belong to
    one person (`same_person_names`). Returns their ids, and the distinct (group, first,
    last) rows of those groups. Vectorised: names are compared once per distinct pair."""
    use = (group >= 0) & (first >= 0)
    frame = pd.DataFrame({"g": group[use], "f": first[use], "l": last[use]}).drop_duplicates()
    frame = frame[frame.groupby("g").f.transform("nunique") >= 2]
    pairs = frame.merge(frame, on="g")
    pairs = pairs[pairs.f_x < pairs.f_y]
    keys = pairs[["f_x", "l_x", "f_y", "l_y"]].to_numpy(dtype=np.int64)
    bad = np.unique(pairs.g.to_numpy()[~_compatible(keys, vocab)])
    return bad, frame[frame.g.isin(bad)]


def distinct_people(
    codes: np.ndarray, first: np.ndarray, last: np.ndarray, names: np.ndarray, *, cap: int
) -> np.ndarray:
    """Per value code: how many different people carry it, judged by their names.

    Names that `same_person_names` finds compatible (exact, nickname, typo, initial, fields
    swapped) count as one person, so "Freya", "Fresa" and "F." on one email are one person
    while "John" and "Jane" on one landline are two. Records without a first name do not
    count. Only values holding incompatible names need the (Python) greedy grouping, which
    runs on sorted names so it does not depend on row order. Values on more than `cap`
    records are shared whatever the names say: they get `cap` without being examined.
    """
    n_values = int(codes.max(initial=-1)) + 1
    people = np.ones(n_values, dtype=np.int32)
    has = codes >= 0
    crowded = np.bincount(codes[has], minlength=n_values) > cap
    people[crowded] = cap
    examine = codes.copy()
    examine[has] = np.where(crowded[codes[has]], -1, codes[has])
    _, frame = name_conflicts(examine, first, last, names)
    text = np.append(names, "")  # code -1 reads ""
    frame = frame.sort_values("g", kind="stable")
    g, f, ln = (frame[c].to_numpy() for c in ("g", "f", "l"))
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if g.size else g
    for start, stop in zip(starts, np.r_[starts[1:], g.size][: starts.size], strict=True):
        value = int(g[start])
        found = sorted(set(zip(text[f[start:stop]], text[ln[start:stop]], strict=True)))
        reps: list[tuple[str, str]] = []
        for given, family in found:
            if not any(same_person_names(given, family, rf, rl) for rf, rl in reps):
                reps.append((given, family))
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
    ids = np.concatenate(chunks)
    ids.sort(kind="stable")
    ids = ids[np.r_[True, ids[1:] != ids[:-1]]] if ids.size else ids
    return ids // n, ids % n, stats
