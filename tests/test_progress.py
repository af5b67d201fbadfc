"""Say why (PROTOCOL.md §4a): what a node tells of a chain that does not move, in each place it
tells it: the core's :class:`~consensus.node.Progress`, ``status``/``get_info`` (``progress``),
``/metrics``, and the devnet's live table."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from appchain.lab.devnet import explain_stall
from appchain.lab.testnet import Answer
from appchain.node.node import Node
from consensus.node import Progress, RoundFailure


def progress(**changes: Any) -> Progress:
    fields: dict[str, Any] = {
        "height": 15,
        "final_height": 12,
        "active_nodes": 4,
        "pulse_min_nodes": 4,
        "round": 0,
        "last_failure": None,
        "checkpoint": None,
        "checkpoint_votes": None,
        "checkpoint_needed": None,
    }
    return Progress(**{**fields, **changes})


def test_too_few_active_nodes_is_said_first() -> None:
    failure = RoundFailure(16, 2, "bitset", "no handshake bitset has enough validators", 2, 4, 2)
    reason = progress(active_nodes=3, last_failure=failure).blocks_reason()
    assert reason == "too few active nodes: 3 active, Pulse needs 4 (pulse_min_nodes)"


def test_a_failed_round_says_its_stage_and_how_many_it_heard() -> None:
    failure = RoundFailure(16, 2, "bitset", "no handshake bitset has enough validators", 2, 4, 2)
    assert progress(last_failure=failure, round=2).blocks_reason() == (
        "round 2 of height 16 failed at bitset (no handshake bitset has enough validators):"
        " heard 2 of 4 quorum members, 2 validators needed"
    )
    # a node outside the failed rounds' quorums knows only that rounds went by
    assert progress(round=3).blocks_reason() == "height 16 is at round 3: its earlier rounds failed"
    assert progress().blocks_reason() is None  # nothing to say while round 0 is under way


def test_finality_says_which_checkpoint_waits_and_for_how_many_votes() -> None:
    assert progress(checkpoint=16, checkpoint_votes=2, checkpoint_needed=3).finality_reason() == (
        "checkpoint 16 waits for checkpoint votes: 2 of 3 needed heard"
    )
    assert progress(checkpoint=16, checkpoint_needed=3).finality_reason() == (
        "checkpoint 16 waits for its certificate (this node is not in its quorum)"
    )
    assert progress().finality_reason() is None


def test_the_status_of_a_stalled_node_says_why(offline_node: Node) -> None:
    """The offline node's tip is the genesis block, long ago: stalled, at round 0 of height 1."""
    shown = offline_node.status()["progress"]
    assert shown["stalled"] is True
    assert shown["active_nodes"] == 12 and shown["pulse_min_nodes"] == 4
    assert shown["finality"] is None and shown["checkpoint"] is None
    offline_node.core.last_failure = RoundFailure(
        1, 0, "template", "no block template from the producer", 3, 12, 7
    )
    shown = offline_node.status()["progress"]
    assert shown["blocks"].startswith("round 0 of height 1 failed at template")
    assert shown["last_failed_round"]["heard"] == 3
    assert offline_node.metrics is not None
    metrics = offline_node.metrics.render().decode()
    for line in (
        "appchain_active_nodes 12.0",
        "appchain_pulse_min_nodes 4.0",
        "appchain_blocks_stalled 1.0",
        "appchain_too_few_active_nodes 0.0",
        'appchain_last_failed_round_heard{stage="template"} 3.0',
        "appchain_last_failed_round_needed 7.0",
    ):
        assert line in metrics, line


def test_the_devnet_table_says_why_from_the_node_furthest_ahead() -> None:
    def status(height: int, blocks: str | None, finality: str | None) -> dict[str, Any]:
        return {"height": height, "final_height": 8, "progress": {"blocks": blocks, "finality": finality}}

    answers = [
        Answer(status(10, "round 1 of height 11 failed at template (x)", None)),
        Answer(status(12, "height 13 is at round 4: its earlier rounds failed", "checkpoint 12 waits")),
        Answer(None),
    ]
    assert explain_stall(answers) == [
        "no new block: height 13 is at round 4: its earlier rounds failed",
        "finality stalled: checkpoint 12 waits",
    ]
    assert explain_stall([Answer(status(12, None, None))]) == []
    assert explain_stall([Answer(None)]) == []


def test_a_node_on_sub_second_blocks_looks_behind_after_four_blocks_and_a_round(offline_node: Node) -> None:
    """``looks_behind`` and ``stalled`` in milliseconds, with no one-second floor under the block
    time: on a 250 ms chain with 6 s rounds a tip is stale after 4 x 250 ms + 6 s, not 4 s + 6 s;
    stalled after a block time and a round."""
    state = offline_node.ledger.state
    params = state.params
    try:
        state.params = msgspec.structs.replace(params, block_time=250)
        assert offline_node.config.round_timeout_ms == 60_000  # the default config: mainnet's

        def at(age_ms: int) -> None:
            offline_node.clock_offset = state.timestamp / 1000 + age_ms / 1000 - time.time()

        at(4 * 250 + 60_000 - 300)
        assert not offline_node.looks_behind() and offline_node.progress()["stalled"] is True
        at(4 * 250 + 60_000 + 300)
        assert offline_node.looks_behind()
        at(250 + 60_000 - 300)
        assert offline_node.progress()["stalled"] is False
    finally:
        state.params = params
        offline_node.clock_offset = 0.0
