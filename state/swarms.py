"""Swarms: which service nodes store which accounts' messages.

Pure functions, following oxen-core's ``service_node_swarm.cpp`` and the storage server's
``swarm.cpp``, with two changes for reproducibility: the random choices come from
:class:`state.sampler.Sampler` (seeded by the caller from chain data) instead of
``mt19937_64``, and every sort has a total order (size, then swarm id; members by node key),
where Oxen's ``std::sort`` is unstable.

- :func:`compute_swarm_space`: an account's position on the u64 ring: drop a 33-byte Session ID's
  prefix byte, XOR the four big-endian 64-bit words of the 32-byte key.
- :func:`find_swarm`: the nearest swarm id on the wrapping ring; a tie goes to the lower (left)
  neighbour.
- :func:`compute_new_swarm_id`: the midpoint of the largest gap between ids (wrapping at MAX_ID).
- :func:`compute_swarm_changes`: place unassigned nodes into swarms no larger than the 25th
  percentile size; refill swarms under the minimum by stealing from swarms above
  ``max(min, size at the 75th percentile - 1)``; while the excess over the minimum summed over
  swarms is at least ``new_swarm_size + margin * swarm count``, form a new swarm; dissolve swarms
  under the minimum and place their nodes into the smallest swarms.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence

from state.sampler import Sampler

UNASSIGNED_SWARM_ID = 2**64 - 1
MAX_SWARM_ID = 2**64 - 2
_U64 = 2**64

SwarmMap = dict[int, list[bytes]]
"""Swarm id → member node keys (kept sorted)."""


def compute_swarm_space(account: bytes) -> int:
    """The ring position of an account (32-byte key, or 33-byte Session ID with its prefix)."""
    if len(account) == 33:
        account = account[1:]
    if len(account) != 32:
        raise ValueError("an account is 32 bytes (or 33 with a Session ID prefix)")
    space = 0
    for i in range(0, 32, 8):
        space ^= int.from_bytes(account[i : i + 8], "big")
    return space


def find_swarm(swarm_ids: Sequence[int], space: int) -> int:
    """The swarm owning ``space``: ``swarm_ids`` must be sorted and non-empty."""
    if not swarm_ids:
        raise ValueError("there are no swarms")
    if len(swarm_ids) == 1:
        return swarm_ids[0]
    index = bisect_left(swarm_ids, space)
    right = swarm_ids[index % len(swarm_ids)]
    left = swarm_ids[index - 1]  # index 0 wraps to the last id
    to_right = (right - space) % _U64
    to_left = (space - left) % _U64
    return right if to_right < to_left else left


def compute_new_swarm_id(swarm_ids: Sequence[int]) -> int:
    """The id of a new swarm: the midpoint of the largest gap (the first largest wins)."""
    ids = sorted(swarm_ids)
    if not ids:
        return 0
    best_gap, best_index = 0, 0
    for i in range(len(ids) - 1):
        gap = ids[i + 1] - ids[i]
        if gap > best_gap:
            best_gap, best_index = gap, i
    wrap_gap = MAX_SWARM_ID - ids[-1] + ids[0] + 1  # 0 and MAX_ID count as one apart
    if wrap_gap > best_gap:
        best_gap, best_index = wrap_gap, len(ids) - 1
    half = best_gap // 2
    room = MAX_SWARM_ID - ids[best_index]
    if half > room:
        return half - room - 1
    return ids[best_index] + half


class SwarmRules:
    """The swarm sizes (chain parameters) the algorithm works with."""

    __slots__ = ("fill_percentile", "margin", "min_size", "new_size", "steal_percentile")

    def __init__(
        self, min_size: int, new_size: int, margin: int, fill_percentile: int, steal_percentile: int
    ) -> None:
        self.min_size = min_size
        self.new_size = new_size
        self.margin = margin
        self.fill_percentile = fill_percentile
        self.steal_percentile = steal_percentile


def _sizes(swarms: SwarmMap) -> list[tuple[int, int]]:
    """(size, id) for every swarm, smallest first, ties by id."""
    return sorted((len(members), swarm_id) for swarm_id, members in swarms.items())


def _excess_pool(swarms: SwarmMap, threshold: int, min_size: int) -> tuple[list[int], int, int]:
    """The swarms larger than ``threshold`` (id order), how many members they hold and their
    excess over the minimum. The pool a node is drawn from is their members, in swarm id order
    then member order (:func:`_take_from_pool` walks to the drawn one, without building it)."""
    pool: list[int] = []
    size = excess = 0
    if threshold < min_size:
        return pool, size, excess
    for swarm_id in sorted(swarms):
        members = swarms[swarm_id]
        if len(members) > threshold:
            size += len(members)
            excess += len(members) - min_size
            pool.append(swarm_id)
    return pool, size, excess


def _take_from_pool(swarms: SwarmMap, pool: list[int], size: int, sampler: Sampler) -> bytes:
    index = sampler.uniform(size)
    for swarm_id in pool:
        members = swarms[swarm_id]
        if index < len(members):
            return members.pop(index)
        index -= len(members)
    raise AssertionError("a draw past the end of the pool")


def _create_swarms_from_excess(swarms: SwarmMap, rules: SwarmRules, sampler: Sampler) -> None:
    if any(len(members) < rules.min_size for members in swarms.values()):
        return
    while True:
        excess = sum(max(len(members) - rules.min_size, 0) for members in swarms.values())
        if excess < rules.new_size + rules.margin * len(swarms):
            return
        new_members: list[bytes] = []
        while len(new_members) < rules.new_size:
            pool, size, _ = _excess_pool(swarms, rules.min_size, rules.min_size)
            if not size:
                raise AssertionError("no excess nodes although the excess passed the threshold")
            new_members.append(_take_from_pool(swarms, pool, size, sampler))
        new_id = compute_new_swarm_id(list(swarms))
        if new_id in swarms:
            raise AssertionError(f"new swarm id {new_id} already exists")
        swarms[new_id] = sorted(new_members)


def _assign(
    nodes: Sequence[bytes], swarms: SwarmMap, rules: SwarmRules, sampler: Sampler, percentile: int
) -> None:
    for node in nodes:
        sizes = _sizes(swarms)
        index = percentile * (len(sizes) - 1) // 100
        value = sizes[index][0]
        upper = len(sizes) - 1
        for i in range(index, len(sizes)):
            if sizes[i][0] > value:
                upper = i - 1
                break
        target = sizes[sampler.uniform(upper + 1)][1]
        swarms[target].append(node)
        swarms[target].sort()
        _create_swarms_from_excess(swarms, rules, sampler)


def compute_swarm_changes(
    current: Mapping[int, Sequence[bytes]], unassigned: Sequence[bytes], rules: SwarmRules, sampler: Sampler
) -> SwarmMap:
    """The new swarm map: ``current`` holds the assigned active nodes, ``unassigned`` the rest."""
    swarms: SwarmMap = {swarm_id: sorted(members) for swarm_id, members in current.items()}
    if not swarms:
        swarms[compute_new_swarm_id([])] = []
    _assign(sorted(unassigned), swarms, rules, sampler, rules.fill_percentile)

    # Robin Hood: refill starving swarms from the rich ones, smallest first. As in Oxen, the
    # sizes (and so the stealing threshold) are taken once, before any node moves.
    sizes = _sizes(swarms)
    threshold = max(rules.min_size, sizes[rules.steal_percentile * (len(sizes) - 1) // 100][0] - 1)
    for size, swarm_id in sizes:
        if size >= rules.min_size:
            break
        poor = swarms[swarm_id]
        insufficient = False
        while not insufficient and len(poor) < rules.min_size:
            pool, size, excess = _excess_pool(swarms, threshold, rules.min_size)
            insufficient = excess < rules.min_size - len(poor)
            if not insufficient:
                poor.append(_take_from_pool(swarms, pool, size, sampler))
                poor.sort()
        if insufficient:
            break  # the next swarms are no poorer, so none of them can be saved either

    _create_swarms_from_excess(swarms, rules, sampler)

    # Dissolve swarms that are still too small, moving their nodes to the smallest swarms.
    while len(swarms) > 1:
        starving = [swarm_id for size, swarm_id in _sizes(swarms) if size < rules.min_size]
        if not starving:
            break
        # Oxen takes the first starving swarm in id order (std::map iteration).
        dissolved = min(starving)
        members = swarms.pop(dissolved)
        _assign(members, swarms, rules, sampler, 0)
    return swarms
