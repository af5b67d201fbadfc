"""``appchain dev-chain``: append valid blocks of random signed events.

A tool for tests, benchmarks and replay rehearsals, not part of consensus: it may use Python's
``random`` seeded from ``--seed`` and the tip height, so the same home and seed give the same
blocks. The mix: transfers (a share to fresh accounts, so the state grows as a real chain's
does), reward claims, node registrations (some fully staked, some with open and reserved
spots), contributions, unlock requests, state changes voted by the right obligations quorum,
and SNS buys, updates and renewals.

Every candidate is first run through the real rules on a scratch overlay of the block being
built; only those that pass go into the block. So the blocks are valid by construction, and
the generator does not need to re-implement a single rule.

Blocks are Pulse-signed: the generator takes the first round whose quorum it holds the keys of
(the producer and at least 7 validators) and runs that round in process
(:mod:`consensus.local`). It knows the genesis nodes' dev keys and the keys of the nodes it
registers, which it derives from their registration index (:func:`derive_devchain_node`), so a
later run on the same home knows them too. Like every dev key, they are public.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import blake3

from appchain.home.chain import Chain, ChainError
from consensus.checkpoint import CheckpointCertificate, aggregate_certificate, sign_checkpoint
from consensus.local import can_sign, sign_round_locally
from consensus.quorum import PulseQuorum, compute_checkpoint_threshold
from consensus.validation import compute_block_entropy, compute_block_quorum
from state import sns
from state.checkpoints import get_checkpoint_quorum, is_checkpoint_height
from state.context import BlockContext
from state.crypto import bls, ed25519
from state.encoding import decode
from state.errors import InvalidEvent
from state.events import (
    ClaimRewards,
    Contribute,
    Event,
    NewState,
    RegisterNode,
    RequestUnlock,
    Reservation,
    SnsBuy,
    SnsRenew,
    SnsUpdate,
    StateChange,
    Transaction,
    Transfer,
    Vote,
    compute_node_proof_message,
    compute_vote_message,
    sign_transaction,
)
from state.ledger import get_account
from state.noderecords import NONE, NodeStatus, ServiceNode
from state.nodes import REGISTRATIONS_KEY, compute_claimable, compute_credit, get_node, iter_nodes
from state.obligations import get_quorum
from state.transition import PendingBlock, begin_block, process_event, with_final_block
from state.types import AccountKey, Atomic, Bytes32, Height, NodeKey, Nonce
from state.view import Overlay

NEW_ACCOUNT_SHARE = 0.3
MIN_ACTIVE_FOR_REMOVALS = 15
"""Below this many active nodes the generator stops decommissioning, deregistering and
unlocking, so the chain keeps the 12 active nodes Pulse needs."""


def _removes_active(event: Event) -> int:
    """1 when ``event`` (accepted) may take an active node out of the active set, now or later."""
    if isinstance(event, RequestUnlock):
        return 1
    if isinstance(event, StateChange) and event.new_state in (NewState.DECOMMISSION, NewState.DEREGISTER):
        return 1
    return 0


def derive_devchain_node(index: int) -> tuple[ed25519.SigningKey, bls.BlsSecretKey]:
    """The (public, unsafe) keys of the node the generator registers with registration ``index``."""
    seed = blake3.blake3(b"appchain devchain node %d" % index).digest()
    return ed25519.SigningKey(seed), bls.secret_key_from_seed(blake3.blake3(b"bls" + seed).digest())


class DevChainGenerator:
    def __init__(
        self,
        chain: Chain,
        accounts: list[ed25519.SigningKey],
        seed: str,
        *,
        events_per_block: int = 100,
        nodes: Sequence[tuple[ed25519.SigningKey, bls.BlsSecretKey]] = (),
        mix: bool = True,
    ) -> None:
        if not accounts:
            raise ValueError("the dev chain needs at least one funded account")
        self.chain = chain
        self.rng = random.Random(f"{seed}:{chain.height}")
        self.events_per_block = events_per_block
        self.mix = mix
        self.signers: dict[AccountKey, ed25519.SigningKey] = {key.public_key: key for key in accounts}
        self.senders = list(self.signers)
        self.node_keys: dict[bytes, ed25519.SigningKey] = {k.public_key: k for k, _ in nodes}
        self.bls_secrets: dict[bytes, bls.BlsSecretKey] = {k.public_key: b for k, b in nodes}
        for key, node in iter_nodes(Overlay(chain.state.get)):
            derived, derived_bls = derive_devchain_node(node.registration_index)
            if bytes(derived.public_key) == bytes(key):
                self.node_keys[key] = derived
                self.bls_secrets[key] = derived_bls
        self.names: list[str] = []

    # -- helpers ---------------------------------------------------------------------------

    def _new_account(self) -> ed25519.SigningKey:
        key = ed25519.SigningKey(self.rng.randbytes(32))
        self.signers[key.public_key] = key
        self.senders.append(key.public_key)
        return key

    def _sign(self, view: Overlay, tx: Transaction) -> Transaction:
        return sign_transaction(self.chain.state.chain_id, tx, self.signers[tx.sender])

    def _nonce(self, view: Overlay, account: AccountKey) -> Nonce:
        return Nonce(get_account(view, account).nonce + 1)

    def _rich_sender(self, view: Overlay, minimum: int) -> AccountKey | None:
        for _ in range(8):
            sender = self.rng.choice(self.senders)
            if get_account(view, sender).balance >= minimum:
                return sender
        return None

    # -- candidates ------------------------------------------------------------------------

    def _transfer(self, view: Overlay) -> Event | None:
        sender = self.rng.choice(self.senders)
        balance = get_account(view, sender).balance
        if balance < 2:
            return None
        recipient = (
            self._new_account().public_key
            if self.rng.random() < NEW_ACCOUNT_SHARE
            else self.rng.choice(self.senders)
        )
        amount = self.rng.randint(1, max(1, balance // 100))
        return self._sign(view, Transfer(sender, self._nonce(view, sender), recipient, Atomic(amount)))

    def _claim(self, view: Overlay) -> Event | None:
        sender = self.rng.choice(self.senders)
        if compute_claimable(view, sender) == 0:
            return None
        return self._sign(view, ClaimRewards(sender, self._nonce(view, sender)))

    def _register(self, view: Overlay) -> Event | None:
        params = self.chain.state.params
        sender = self._rich_sender(view, params.staking_requirement)
        if sender is None:
            return None
        raw_index = view.get(REGISTRATIONS_KEY)
        index = 0 if raw_index is None else decode(raw_index, int)  # this registration's index
        node, bls_secret = derive_devchain_node(index)
        bls_key = bls.public_key(bls_secret)
        self.bls_secrets[node.public_key] = bls_secret
        full = self.rng.random() < 0.5
        amount = params.staking_requirement if full else params.staking_requirement // 2
        reserved: tuple[Reservation, ...] = ()
        if not full and self.rng.random() < 0.5:
            reserved = (Reservation(self.rng.choice(self.senders), Atomic(params.staking_requirement // 4)),)
            if reserved[0].account == sender:
                reserved = ()
        self.node_keys[node.public_key] = node
        tx = RegisterNode(
            sender=sender,
            nonce=self._nonce(view, sender),
            node_key=NodeKey(node.public_key),
            bls_key=bls_key,
            bls_pop=bls.prove_possession(bls_secret),
            node_signature=node.sign(compute_node_proof_message(node.public_key, bls_key)),
            operator_fee_bp=self.rng.choice([0, 500, 1000, 2500]),
            amount=Atomic(amount),
            reserved=reserved,
        )
        return self._sign(view, tx)

    def _contribute(self, view: Overlay, awaiting: list[tuple[NodeKey, ServiceNode]]) -> Event | None:
        if not awaiting:
            return None
        key, node = self.rng.choice(awaiting)
        params = self.chain.state.params
        room = params.staking_requirement - sum(c.amount for c in node.contributions)
        reserved = list(node.reserved)
        amount: int
        if reserved and self.rng.random() < 0.7:
            spot = self.rng.choice(reserved)
            sender, amount = spot.account, spot.amount
        else:
            sender = self.rng.choice(self.senders)
            amount = room - sum(r.amount for r in reserved)
        if amount <= 0 or sender not in self.signers:
            return None
        return self._sign(view, Contribute(sender, self._nonce(view, sender), key, Atomic(amount)))

    def _unlock(self, view: Overlay, nodes: list[tuple[NodeKey, ServiceNode]]) -> Event | None:
        if not nodes:
            return None
        key, node = self.rng.choice(nodes)
        account = self.rng.choice(node.contributions).account
        if account not in self.signers:
            return None
        return self._sign(view, RequestUnlock(account, self._nonce(view, account), key))

    def _name(self, view: Overlay, height: int) -> Event | None:
        sender = self._rich_sender(view, self.chain.state.params.sns_price * 2)
        if sender is None:
            return None
        if self.names and self.rng.random() < 0.5:
            name = self.rng.choice(self.names)
            record = sns.get_name(view, sns.compute_name_hash(name))
            if record is not None and not sns.is_expired(record, height):
                if record.owner in self.signers and self.rng.random() < 0.5:
                    value = sns.encrypt_value(name, b"\x05" + self.rng.randbytes(32), self.rng.randbytes(24))
                    tx: Transaction = SnsUpdate(
                        record.owner,
                        self._nonce(view, record.owner),
                        Bytes32(sns.compute_name_hash(name)),
                        record.update_id,
                        encrypted_value=value,
                    )
                    return self._sign(view, tx)
                return self._sign(
                    view, SnsRenew(sender, self._nonce(view, sender), Bytes32(sns.compute_name_hash(name)))
                )
        name = f"dev-{self.rng.randrange(10**6)}"
        self.names.append(name)
        value = sns.encrypt_value(name, b"\x05" + self.rng.randbytes(32), self.rng.randbytes(24))
        tx = SnsBuy(sender, self._nonce(view, sender), Bytes32(sns.compute_name_hash(name)), value, sender)
        return self._sign(view, tx)

    def _state_change(self, view: Overlay, height: int, *, removals: bool) -> Event | None:
        params = self.chain.state.params
        quorum = get_quorum(view, height)
        if quorum is None or not quorum.workers:
            return None
        signers = [i for i, key in enumerate(quorum.validators) if key in self.node_keys]
        if len(signers) < params.obligations_threshold:
            return None
        index = self.rng.randrange(len(quorum.workers))
        node = get_node(view, quorum.workers[index])
        if node is None:
            return None
        if node.status == NodeStatus.DECOMMISSIONED:
            new_state = NewState.RECOMMISSION if self.rng.random() < 0.8 else NewState.DEREGISTER
        elif (
            compute_credit(node, height, params) >= params.decommission_min_credit and self.rng.random() < 0.8
        ):
            new_state = NewState.DECOMMISSION
        else:
            new_state = self.rng.choice([NewState.IP_CHANGE_PENALTY, NewState.DEREGISTER])
        voters = self.rng.sample(signers, params.obligations_threshold)
        reasons = self.rng.randrange(16) if new_state == NewState.DECOMMISSION else 0
        message = compute_vote_message(self.chain.state.chain_id, height, index, int(new_state), reasons)
        votes = tuple(
            Vote(i, reasons, self.node_keys[quorum.validators[i]].sign(message)) for i in sorted(voters)
        )
        return StateChange(Height(height), index, int(new_state), votes)

    # -- blocks ----------------------------------------------------------------------------

    def choose_round(self) -> tuple[int, PulseQuorum]:
        """The first round whose producer and 7 validators this generator can sign for."""
        state = self.chain.state
        height = state.height + 1
        entropy = compute_block_entropy(self.chain.random_value_at, height)
        for round_ in range(256):
            quorum = compute_block_quorum(state, entropy, height, round_)
            if quorum is None:
                raise ChainError("fewer than 12 active service nodes: Pulse cannot produce a block")
            if can_sign(quorum, self.node_keys):
                return round_, quorum
        raise ChainError("no round in 256 has a quorum this generator holds the keys of")

    def make_events(self, producer: NodeKey) -> list[Event]:
        state = self.chain.state
        height = state.height + 1
        timestamp = state.timestamp + state.params.block_time
        ctx = BlockContext(height, timestamp, state.block_hash, state.chain_id, state.params, False, producer)
        view = Overlay(state.get)
        begin_block(view, ctx)
        nodes = iter_nodes(view) if self.mix else []
        awaiting = [(k, n) for k, n in nodes if n.status == NodeStatus.AWAITING]
        staked = [(k, n) for k, n in nodes if n.status != NodeStatus.AWAITING]
        # Active nodes not already leaving: a node with an unlock requested exits on its own later,
        # so it does not count towards the Pulse minimum. Kept current as removals are accepted.
        active = sum(1 for _, n in staked if n.status == NodeStatus.ACTIVE and n.unlock_height == NONE)
        events: list[Event] = []
        attempts = 0
        while len(events) < self.events_per_block and attempts < self.events_per_block * 4:
            attempts += 1
            roll = self.rng.random() if self.mix else 0.0
            candidate: Event | None
            if roll < 0.80:
                candidate = self._transfer(view)
            elif roll < 0.85:
                candidate = self._claim(view)
            elif roll < 0.88:
                candidate = self._name(view, height)
            elif roll < 0.90:
                candidate = self._contribute(view, awaiting)
            elif roll < 0.905 + (0.01 if active < 20 else 0):
                candidate = self._register(view)
            elif roll < 0.91 and active > 16:
                candidate = self._unlock(view, staked + awaiting)
            elif roll < 0.915:
                candidate = self._state_change(view, height, removals=active >= MIN_ACTIVE_FOR_REMOVALS)
            else:
                candidate = self._transfer(view)
            if candidate is None:
                continue
            try:
                process_event(view, candidate, ctx)
            except InvalidEvent:
                continue
            events.append(candidate)
            active -= _removes_active(candidate)
        return events

    def next_block(self) -> PendingBlock:
        """Build, Pulse-sign and append the next block on the tip."""
        round_, quorum = self.choose_round()
        events = self.make_events(quorum.producer)
        timestamp = self.chain.state.timestamp + self.chain.state.params.block_time
        template = self.chain.propose(events, timestamp, producer=quorum.producer, round_=round_)
        block = sign_round_locally(template.block, quorum, self.node_keys, self.rng.randbytes)
        pending = with_final_block(template, block)
        self.chain.append_pending(pending)
        return pending

    def certify_tip(self) -> CheckpointCertificate | None:
        """On a checkpoint height: the certificate of the quorum members whose BLS keys we hold."""
        state = self.chain.state
        height = state.height
        if height == 0 or not is_checkpoint_height(height, state.params.checkpoint_interval):
            return None
        quorum = get_checkpoint_quorum(Overlay(state.get), height)
        if quorum is None:
            return None
        votes = {
            i: sign_checkpoint(self.bls_secrets[m.node_key], state.chain_id, height, state.block_hash)
            for i, m in enumerate(quorum.members)
            if m.node_key in self.bls_secrets
        }
        if len(votes) < compute_checkpoint_threshold(len(quorum.members)):
            return None
        return aggregate_certificate(height, state.block_hash, votes, len(quorum.members))

    def run(self, blocks: int, progress: Callable[[int, int], None] | None = None) -> None:
        for _ in range(blocks):
            pending = self.next_block()
            certificate = self.certify_tip()
            if certificate is not None:
                self.chain.add_certificate(certificate)
            if progress is not None:
                progress(1, len(pending.block.events))
