"""Linked pairs -> clusters, with the bridge guard (private to `identity`).

Union-find over the auto-merge links gives connected components. Transitivity can chain
people together: A-B on an email, B-C on a phone, although A and C have different dates of
birth; "J. Smith" links to John Smith and, at the same address, to Jane Smith. The bridge
guard finds every component holding a conflict -- dates of birth that `dob_level` calls
"other", two ids of one platform, or two first names that cannot be one person's
(`same_person_names`) -- and rebuilds it greedily: links are replayed strongest first
(Kruskal's order, ties broken by record id so the result does not depend on row order), and a
link is dropped when it would put two conflicting records in one cluster. The weakest links,
the ones that did the bridging, are the ones that go.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from identity._blocking import name_conflicts
from identity._compare import same_person_names


@dataclass(frozen=True)
class GuardStats:
    """How much the bridge guard changed."""

    conflicted_clusters: int
    dropped_links: int


def _components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(left.size, dtype=np.int8), (left, right)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _dob_conflict(a: int, b: int) -> bool:
    # Same rule as _compare.dob_level == "other", on yyyymmdd integers.
    ya, ma, da = a // 10000, a // 100 % 100, a % 100
    yb, mb, db = b // 10000, b // 100 % 100, b % 100
    if a == b:
        return False
    same = (ya == yb) + (ma == mb) + (da == db)
    return not (same == 2 or (ya == yb and ma == db and da == mb))


class Names:
    """First/last name codes of every record and a cached compatibility test on them."""

    def __init__(self, first: np.ndarray, last: np.ndarray, vocab: np.ndarray) -> None:
        self.first, self.last, self.vocab = first, last, vocab
        self._cache: dict[tuple[int, int, int, int], bool] = {}

    def compatible(self, a: tuple[int, int], b: tuple[int, int]) -> bool:
        key = (*a, *b) if a <= b else (*b, *a)
        hit = self._cache.get(key)
        if hit is None:
            v = self.vocab
            text = [v[c] if c >= 0 else "" for c in key]
            hit = self._cache[key] = same_person_names(*text)
        return hit

    def of(self, record: int) -> tuple[int, int] | None:
        first = int(self.first[record])
        return (first, int(self.last[record])) if first >= 0 else None


def _conflicted(
    labels: np.ndarray, dob: np.ndarray, external: np.ndarray | None, names: Names
) -> np.ndarray:
    """Component labels that hold at least two records in conflict."""
    frame = pd.DataFrame({"c": labels, "d": dob})
    frame = frame[frame.d > 0].drop_duplicates()
    multi = frame[frame.groupby("c").d.transform("size") > 1].groupby("c").d.agg(list)
    bad = {c for c, ds in multi.items() if _any_dob_conflict(ds)}
    if external is not None:
        ext = pd.DataFrame({"c": labels, "e": external})
        counts = ext[ext.e >= 0].drop_duplicates().groupby("c").size()
        bad |= set(counts[counts > 1].index)
    bad |= set(name_conflicts(labels, names.first, names.last, names.vocab)[0].tolist())
    return np.array(sorted(bad), dtype=np.int64)


def _any_dob_conflict(dobs: list[int]) -> bool:
    return any(_dob_conflict(a, b) for i, a in enumerate(dobs) for b in dobs[i + 1 :])


class _Sets:
    """Union-find whose roots remember the dates of birth and platform ids they hold."""

    def __init__(
        self, members: np.ndarray, dob: np.ndarray, external: np.ndarray | None, names: Names
    ):
        self.parent = {int(m): int(m) for m in members}
        self.dobs = {int(m): {int(dob[m])} - {0} for m in members}
        self.exts = {
            int(m): ({int(external[m])} - {-1}) if external is not None else set() for m in members
        }
        self.names = names
        self.people: dict[int, set[tuple[int, int]]] = {}
        for m in members:
            person = names.of(int(m))
            self.people[int(m)] = {person} if person is not None else set()

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union_if_compatible(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if any(_dob_conflict(x, y) for x in self.dobs[ra] for y in self.dobs[rb]):
            return False
        if self.exts[ra] and self.exts[rb] and not self.exts[ra] & self.exts[rb]:
            return False
        compatible = self.names.compatible
        if any(not compatible(x, y) for x in self.people[ra] for y in self.people[rb]):
            return False
        self.parent[rb] = ra
        self.dobs[ra] |= self.dobs.pop(rb)
        self.exts[ra] |= self.exts.pop(rb)
        self.people[ra] |= self.people.pop(rb)
        return True


def cluster(
    n: int,
    left: np.ndarray,
    right: np.ndarray,
    weight: np.ndarray,
    rank: np.ndarray,
    dob: np.ndarray,
    external: np.ndarray | None,
    names: Names,
) -> tuple[np.ndarray, GuardStats]:
    """Cluster label per record (the index of its member with the lowest `rank`).

    `left`/`right`/`weight` are the auto-merge links; `rank` orders records by id so that
    labels and tie-breaks are independent of row order.
    """
    labels = _components(n, left, right)
    bad = _conflicted(labels, dob, external, names)
    dropped = 0
    if bad.size:
        in_bad = np.isin(labels[left], bad)
        keep = ~in_bad
        bl, br, bw = left[in_bad], right[in_bad], weight[in_bad]
        lo_rank = np.minimum(rank[bl], rank[br])
        hi_rank = np.maximum(rank[bl], rank[br])
        order = np.lexsort((hi_rank, lo_rank, -bw))
        members = np.flatnonzero(np.isin(labels, bad))
        sets = _Sets(members, dob, external, names)
        accepted = np.zeros(bl.size, dtype=bool)
        for i in order:
            accepted[i] = sets.union_if_compatible(int(bl[i]), int(br[i]))
        dropped = int((~accepted).sum())
        left = np.concatenate([left[keep], bl[accepted]])
        right = np.concatenate([right[keep], br[accepted]])
        labels = _components(n, left, right)
    # Representative: the member whose record id sorts first.
    best = pd.Series(rank).groupby(labels).idxmin()
    return best.to_numpy()[labels], GuardStats(int(bad.size), dropped)
