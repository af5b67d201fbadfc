"""A chain's state at a height, as the genesis of a new chain: what carries over and what resets.

``appchain export-genesis`` (:mod:`appchain.home.genesis_export`) rebuilds the state after a final
block ``H`` and hands it to :func:`export_state`, which returns a genesis document whose block 0
recreates that state as far as a genesis can hold it, the way Cosmos's ``export`` and in-place
testnet start a chain from another's state. A genesis holds balances, the reward pool, service
nodes staked in full and SNS records (:mod:`genesis.document`); everything else starts afresh.

**Carried over unchanged**: the reward pool and balances (after the moves below); every
registered node staked in full, with its operator, node key, BLS key and proof of possession,
node signature, operator fee, and its contributors with their amounts in their order (so the
``bls/`` index, the ``registry`` and each account's ``stakes/`` index come back as they were);
every live SNS record's name hash, encrypted value, owner and backup owner.

**Moved, so that the supply is conserved to the atomic unit** (:mod:`state.supply`; the export
checks that the new genesis supply is the old one):

- *Rewards.* Every node is settled at ``H`` exactly as a settlement at ``H`` would settle it
  (:func:`state.rewards.compute_node_payouts`: the operator fee first, the rest pro rata to
  stake, what the divisions drop back to the pool), and every account's accrued rewards (those
  settled before and those just settled) are credited to its balance, as a claim would credit
  them, without the claim's fee. Nothing stays pending, since a genesis has no reward ledger.
- *Locked stakes* of deregistered nodes return to their contributors' balances now instead of
  at the end of their ``deregistration_lock``.
- *Registrations still awaiting contributions* are dropped (a genesis node is staked in full)
  and every contribution returns to its contributor, as the operator's withdrawal would return
  them.

**Kept, with their state reset** (Oxen keeps both kinds in its service-node list with their
stakes locked, and so does the export; only what the genesis format cannot say is lost):

- a *decommissioned* node stays registered with its stakes; the genesis makes it active (a
  genesis node is active from block 0) with the initial credit, and the new chain's
  obligations quorums test it from there, decommissioning it again if it fails its tests;
- a node whose *exit was requested* stays registered with its stakes; the request is dropped
  (a genesis has no unlock height), so a contributor requests it again on the new chain.

**Reset**, since heights restart at 0 and block 0 writes these afresh: account nonces (so with
the old chain id, a transaction signed on the old chain could be replayed on the new one: the
command's default chain id is a new one); per node the registration height and order (genesis
registers nodes in key order), activation height, credit, decommission history and reasons,
last state change, reward-queue position (the queue restarts in key order), unlock height,
swarm (block 0 draws swarms afresh), reward index and the heights of contributions; per name
the expiry, which keeps the blocks it had left (``expiry - H``), and the update id (the hash of
the genesis event; an update names the new one), while a name expired at ``H`` is dropped (it
is free on both chains); the lifetime totals of the reward ledger, the reward index, scheduled
work, obligations and checkpoint quorums, the registration counter and the swarm list.

:func:`normalise_state` is this list as a function: it maps a state to a comparable map, making
the moves and resets above and nothing else, so the normalised root of the state at ``H`` equals
the one of the genesis state built from its export (:func:`compute_normalised_root`). This holds
when ``payable_delay > 0``: with no payable delay the genesis nodes earn block 0's reward already.

**Time**: a genesis keeps ``genesis_time`` in unix seconds while headers are in milliseconds;
the export's default genesis time is block ``H``'s timestamp in seconds **rounded up**
(:func:`compute_export_genesis_time`), so the new chain never starts before the old tip. The
parameters carry over whole, ``block_time`` (ms) and ``checkpoint_interval`` included.

**Replacing the node set** (``replacement``, the command's ``--replace-nodes N``, as Cosmos's
in-place testnet swaps in local validators): every kept node leaves with its stakes returned to
its contributors' balances, as if all had exited at ``H``; the replacement nodes' stakes are
taken out of the reward pool, and the export is refused when the pool holds less.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from genesis.document import Genesis, compute_supply
from state import supply
from state.checkpoints import CHECKPOINT_QUORUM_PREFIX
from state.encoding import Decoder, encode
from state.events import Allocation, Contribution, GenesisName, GenesisNode
from state.ledger import ACCOUNT_PREFIX, POOL_KEY, REWARD_PREFIX, Account, RewardAccount, get_pool_balance
from state.membership import SWARMS_KEY
from state.noderecords import LockedStake, NodeStatus, ServiceNode
from state.nodes import (
    BLS_PREFIX,
    LOCK_PREFIX,
    NODE_PREFIX,
    REGISTRATIONS_KEY,
    REGISTRY_KEY,
    STAKES_PREFIX,
    iter_nodes,
)
from state.obligations import QUORUM_PREFIX
from state.params import ChainParams
from state.rewards import REWARD_INDEX_KEY, compute_node_payouts, compute_unsettled, get_index
from state.schedule import DUE_PREFIX
from state.sns import NAME_PREFIX, NameRecord
from state.state import State
from state.types import AccountKey, Atomic, Hash32, Height, NodeKey, Nonce
from state.view import Overlay

RESET_PREFIXES = (REWARD_PREFIX, LOCK_PREFIX, DUE_PREFIX, QUORUM_PREFIX, CHECKPOINT_QUORUM_PREFIX)
"""State key prefixes a genesis does not carry: moved into balances (rewards, locked stakes) or
written afresh by the new chain (scheduled work, quorums)."""
RESET_KEYS = (REWARD_INDEX_KEY, REGISTRATIONS_KEY, SWARMS_KEY)
"""Single state keys the new chain writes afresh."""
REBUILT_PREFIXES = (ACCOUNT_PREFIX, NODE_PREFIX, NAME_PREFIX)
"""State key prefixes :func:`normalise_state` rebuilds from the moved and reset records."""
RESET_UPDATE_ID = Hash32(bytes(32))
"""The update id every normalised name record carries."""

_account = Decoder(Account)
_reward = Decoder(RewardAccount)
_locked = Decoder(LockedStake)
_name = Decoder(NameRecord)
_keys = Decoder(tuple[bytes, ...])


class ExportError(ValueError):
    """A state that cannot be exported as asked (one line for the user)."""


@dataclass
class ExportSummary:
    """What the export moved or dropped to fit the state into a genesis (all amounts atomic)."""

    height: int
    rewards_credited: int = 0
    """Accrued and unsettled rewards credited to balances."""
    rewards_to_pool: int = 0
    """What the settlements' divisions dropped, back to the pool."""
    locked_stakes_returned: int = 0
    awaiting_registrations_dropped: int = 0
    awaiting_stakes_returned: int = 0
    expired_names_dropped: int = 0
    replaced_nodes: int = 0
    """Nodes that left because the node set was replaced (their stakes returned)."""
    replaced_stakes_returned: int = 0
    replacement_stakes_from_pool: int = 0


@dataclass
class FoldedState:
    """The state at ``H`` with the supply moves made: what a genesis can hold of it."""

    params: ChainParams
    balances: dict[bytes, int]
    pool: int
    nodes: list[tuple[NodeKey, ServiceNode]]
    """The nodes kept (staked in full), in key order."""
    names: list[tuple[bytes, NameRecord]]
    """The live names in name-hash order, their expiry counted from the new genesis."""
    summary: ExportSummary
    supply: int
    """The supply of the state (:func:`state.supply.compute_supply`): what the genesis must hold."""

    def credit(self, account: bytes, amount: int) -> None:
        self.balances[account] = self.balances.get(account, 0) + amount


def fold_state(state: State) -> FoldedState:
    """Settle and credit every reward, return locked and awaiting stakes, drop expired names."""
    view = Overlay(state.get)
    index = get_index(view)
    folded = FoldedState(
        params=state.params,
        balances={bytes(key): _account.decode(raw).balance for key, raw in state.prefixed(ACCOUNT_PREFIX)},
        pool=get_pool_balance(view),
        nodes=[],
        names=[],
        summary=ExportSummary(height=state.height),
        supply=supply.compute_supply(state).total,
    )
    summary = folded.summary
    for key, node in iter_nodes(view):
        earned = compute_unsettled(node, index)
        if earned:
            payouts = compute_node_payouts(node, earned)
            for account, amount in payouts:
                folded.credit(account, amount)
            paid = sum(amount for _, amount in payouts)
            summary.rewards_credited += paid
            summary.rewards_to_pool += earned - paid
            folded.pool += earned - paid
        if node.status == NodeStatus.AWAITING:
            for contribution in node.contributions:
                folded.credit(contribution.account, contribution.amount)
                summary.awaiting_stakes_returned += contribution.amount
            summary.awaiting_registrations_dropped += 1
        else:
            folded.nodes.append((key, node))
    for holder, raw in state.prefixed(REWARD_PREFIX):
        accrued = _reward.decode(raw).accrued
        folded.credit(holder, accrued)
        summary.rewards_credited += accrued
    for _, raw in state.prefixed(LOCK_PREFIX):
        for contribution in _locked.decode(raw).contributions:
            folded.credit(contribution.account, contribution.amount)
            summary.locked_stakes_returned += contribution.amount
    for name_hash, raw in state.prefixed(NAME_PREFIX):
        record = _name.decode(raw)
        if record.expiry_height <= state.height:
            summary.expired_names_dropped += 1
            continue
        remaining = Height(record.expiry_height - state.height)
        folded.names.append((name_hash, msgspec.structs.replace(record, expiry_height=remaining)))
    return folded


def _genesis_node(key: NodeKey, node: ServiceNode) -> GenesisNode:
    return GenesisNode(
        node_key=key,
        bls_key=node.bls_key,
        bls_pop=node.bls_pop,
        node_signature=node.node_signature,
        operator=node.operator,
        operator_fee_bp=node.operator_fee_bp,
        contributions=tuple(Contribution(c.account, c.amount) for c in node.contributions),
    )


def compute_export_genesis_time(timestamp_ms: int) -> int:
    """The genesis time (unix seconds) of a chain exported at a block stamped ``timestamp_ms``:
    rounded up, so block 0 of the new chain is not earlier than the old tip."""
    return -(-timestamp_ms // 1000)


def export_state(
    state: State,
    *,
    chain_id: str,
    genesis_time: int,
    replacement: Sequence[GenesisNode] | None = None,
) -> tuple[Genesis, ExportSummary]:
    """The genesis of a new chain starting from ``state`` (see the module's introduction).

    With ``replacement`` the node set is those nodes instead, staked out of the reward pool;
    :class:`ExportError` if the pool cannot pay their stakes.
    """
    return export_folded(
        fold_state(state), chain_id=chain_id, genesis_time=genesis_time, replacement=replacement
    )


def export_folded(
    folded: FoldedState,
    *,
    chain_id: str,
    genesis_time: int,
    replacement: Sequence[GenesisNode] | None = None,
) -> tuple[Genesis, ExportSummary]:
    """:func:`export_state` of a state already folded (``folded`` is used up: nodes replaced
    by ``replacement`` credit their stakes into it)."""
    summary = folded.summary
    if replacement is None:
        nodes = tuple(_genesis_node(key, node) for key, node in folded.nodes)
    else:
        for _, node in folded.nodes:
            for contribution in node.contributions:
                folded.credit(contribution.account, contribution.amount)
                summary.replaced_stakes_returned += contribution.amount
        summary.replaced_nodes = len(folded.nodes)
        cost = sum(c.amount for node in replacement for c in node.contributions)
        if cost > folded.pool:
            raise ExportError(
                f"the reward pool holds {folded.pool}, less than the {cost} that {len(replacement)} "
                "replacement nodes must stake"
            )
        folded.pool -= cost
        summary.replacement_stakes_from_pool = cost
        nodes = tuple(sorted(replacement, key=lambda node: node.node_key))
    draft = Genesis(
        chain_id=chain_id,
        genesis_time=genesis_time,
        params=folded.params,
        total_supply=Atomic(0),
        reward_pool=Atomic(folded.pool),
        allocations=tuple(
            Allocation(AccountKey(account), Atomic(amount))
            for account, amount in sorted(folded.balances.items())
            if amount > 0
        ),
        service_nodes=nodes,
        sns_records=tuple(
            GenesisName(name_hash, r.encrypted_value, r.owner, r.backup_owner, r.expiry_height)
            for name_hash, r in folded.names
        ),
    )
    genesis = msgspec.structs.replace(draft, total_supply=Atomic(compute_supply(draft)))
    if genesis.total_supply != folded.supply:
        raise AssertionError(
            f"the export holds a supply of {genesis.total_supply}, the state {folded.supply}"
        )
    return genesis, summary


def reset_node(node: ServiceNode, registration_index: int, params: ChainParams) -> ServiceNode:
    """``node`` as a genesis registers it: its keys, fee and stakes; every other field fresh."""
    return ServiceNode(
        operator=node.operator,
        bls_key=node.bls_key,
        bls_pop=node.bls_pop,
        node_signature=node.node_signature,
        operator_fee_bp=node.operator_fee_bp,
        contributions=tuple(Contribution(c.account, c.amount) for c in node.contributions),
        reserved=(),
        registration_height=Height(0),
        registration_index=registration_index,
        status=NodeStatus.ACTIVE,
        activation_height=0,
        active_since=0,
        recommission_credit=params.credit_initial,
        last_reward_height=0,
    )


def normalise_state(state: State) -> dict[bytes, bytes]:
    """The state map with the export's moves made and its resets applied, and nothing else.

    Balances include the moved amounts (nonces 0; an empty account is absent); the pool includes
    the settlements' remainders (absent when 0); nodes are reduced by :func:`reset_node`, ranked
    in key order; the ``bls/``, ``registry`` and ``stakes/`` entries keep only the kept nodes;
    names are the live ones with expiry counted from ``H`` and update id zero; the keys under
    :data:`RESET_PREFIXES` and :data:`RESET_KEYS` are left out. A key the export does not know
    raises ``ValueError``: a new kind of state must first be given its place in the export.
    """
    folded = fold_state(state)
    kept = {bytes(key) for key, _ in folded.nodes}
    normal: dict[bytes, bytes] = {}
    for key, value in state.items():
        if key.startswith(BLS_PREFIX):
            if value in kept:
                normal[key] = value
        elif key.startswith(STAKES_PREFIX) or key == REGISTRY_KEY:
            held = tuple(node_key for node_key in _keys.decode(value) if node_key in kept)
            if held:
                normal[key] = encode(held)
        elif key == POOL_KEY or key in RESET_KEYS or key.startswith(REBUILT_PREFIXES + RESET_PREFIXES):
            continue
        else:
            raise ValueError(f"the state key {key!r} is neither carried nor reset by a genesis export")
    for account, balance in folded.balances.items():
        if balance:
            normal[ACCOUNT_PREFIX + account] = encode(Account(Atomic(balance), Nonce(0)))
    if folded.pool:
        normal[POOL_KEY] = encode(folded.pool)
    for rank, (key, node) in enumerate(folded.nodes):
        normal[NODE_PREFIX + key] = encode(reset_node(node, rank, state.params))
    for name_hash, record in folded.names:
        normal[NAME_PREFIX + name_hash] = encode(msgspec.structs.replace(record, update_id=RESET_UPDATE_ID))
    return normal


def compute_normalised_root(state: State) -> Hash32:
    """The state root of :func:`normalise_state`'s map."""
    normal = normalise_state(state)
    return State.from_snapshot(
        state.chain_id,
        state.params,
        height=0,
        block_hash=state.block_hash,
        timestamp=0,
        items=normal.items(),
    ).root
