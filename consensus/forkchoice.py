"""Fork choice among non-final blocks (DESIGN.md: never below finality, so reorgs are shallow).

Between our block and a competing valid block at the same height on the same parent:

1. a block certified by a checkpoint certificate wins (it is final);
2. otherwise the block of the lower Pulse round wins: round 0 is the one every honest node
   tries first, later rounds exist only because earlier ones failed;
3. otherwise (two blocks of one round: the producer equivocated) the lower block hash wins, a
   rule every node applies the same way without talking.

A block at or below the final height is never replaced.
"""

from __future__ import annotations


def prefer_candidate(
    *,
    height: int,
    final_height: int,
    our_round: int,
    our_hash: bytes,
    candidate_round: int,
    candidate_hash: bytes,
    certified_hash: bytes | None,
) -> bool:
    """True when the candidate block should replace ours at ``height``."""
    if height <= final_height or candidate_hash == our_hash:
        return False
    if certified_hash is not None:
        if certified_hash == our_hash:
            return False
        if certified_hash == candidate_hash:
            return True
    return (candidate_round, candidate_hash) < (our_round, our_hash)
