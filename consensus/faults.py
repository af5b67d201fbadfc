"""The ``--faults`` specification of ``appchain simulate``.

A comma-separated list of items (times in simulated seconds from genesis)::

    loss=0.05                 packet loss probability (TCP retransmits: messages arrive late)
    latency=0.1               one-way latency, seconds (jitter=0.05 adds up to that much)
    crash=3@5-40              node 3 is down from t=5 to t=40 (repeat the item for more)
    crash=3-5@5-40/4          nodes 3, 4 and 5 down from t=5, back one by one: at 40, 44, 48
    partition=0-9|10-29@6-40  nodes 0..9 and 10..29 cannot talk from t=6 to t=40
    skew=4:0.5                node 4's clock is 0.5 s ahead
    byzantine=1:withhold      node 1 withholds; also equivocate, double-sign, garbage
    floor=1-9@30+20/5         from t=30, nodes 1, 2, … 9 stopped in waves until the active set
                              is at pulse_min_nodes (the rest of them then too); back one by
                              one 20 s after the last stop, 5 s apart (ToFloor; +HOLD and
                              /STAGGER may be left out: 10 s and 5 s)
    stall=30-840/5            at t=30 the next producer and validators stopped, so that no
                              round can make the block; back from t=840, 5 s apart (Stall;
                              /STAGGER left out: together)

Nodes are listed as ``3``, ``3-5`` or ``3+7+9-11``; a ``floor`` stops them in that order.
"""

from __future__ import annotations

import math

from consensus.simulator import Faults, SimConfig, Stall, ToFloor

DEFAULT_HOLD = 10.0
DEFAULT_STAGGER = 5.0

BYZANTINE_KINDS = ("equivocate", "withhold", "double-sign", "garbage")


class FaultSpecError(ValueError):
    """A ``--faults`` item that cannot be read."""


def _nodes(text: str, count: int) -> set[int]:
    return set(_node_list(text, count))


def _node_list(text: str, count: int) -> list[int]:
    """The nodes of ``text`` in the order it lists them, each once."""
    nodes: list[int] = []
    for part in text.split("+"):
        low, _, high = part.partition("-")
        first, last = int(low), int(high or low)
        if not 0 <= first <= last < count:
            raise FaultSpecError(f"node range {part!r} is outside 0..{count - 1}")
        nodes += [node for node in range(first, last + 1) if node not in nodes]
    return nodes


def _number(text: str, what: str, *, low: float = 0.0, high: float = math.inf) -> float:
    """A finite number in ``[low, high)`` (NaN, infinities and negatives never make sense here)."""
    value = float(text)
    if not math.isfinite(value) or not low <= value < high:
        upper = "" if high == math.inf else f" and below {high:g}"
        raise FaultSpecError(f"{what} must be a finite number of at least {low:g}{upper}")
    return value


def _window(text: str) -> tuple[float, float]:
    start, _, end = text.partition("-")
    low, high = _number(start, "a window's start"), _number(end, "a window's end")
    if not low < high:
        raise FaultSpecError(f"time window {text!r} must be start-end with start < end")
    return low, high


def _staggered(text: str, default: float) -> tuple[str, float]:
    """``text`` without its ``/STAGGER`` tail, and the stagger (``default`` without one)."""
    head, slash, tail = text.partition("/")
    return head, _number(tail, "a stagger (seconds)") if slash else default


def parse_faults(spec: str, config: SimConfig) -> SimConfig:
    """``config`` with the faults of ``spec`` applied; raises :class:`FaultSpecError`."""
    faults = Faults()
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, value = item.partition("=")
        try:
            if name == "loss":
                faults.loss = _number(value, "loss (a probability)", high=1.0)
            elif name == "latency":
                config.latency = _number(value, "latency (seconds)")
            elif name == "jitter":
                config.jitter = _number(value, "jitter (seconds)")
            elif name == "crash":
                nodes, _, timing = value.partition("@")
                window, stagger = _staggered(timing, 0.0)
                down, back = _window(window)
                for offset, index in enumerate(sorted(_nodes(nodes, config.nodes))):
                    faults.crashes.append((index, down, back + offset * stagger))
            elif name == "floor":
                nodes, _, timing = value.partition("@")
                timing, stagger = _staggered(timing, DEFAULT_STAGGER)
                start, plus, hold = timing.partition("+")
                faults.floors.append(
                    ToFloor(
                        tuple(_node_list(nodes, config.nodes)),
                        _number(start, "a floor's start"),
                        _number(hold, "a floor's hold (seconds)") if plus else DEFAULT_HOLD,
                        stagger,
                    )
                )
            elif name == "stall":
                window, stagger = _staggered(value, 0.0)
                faults.stalls.append(Stall(*_window(window), stagger))
            elif name == "partition":
                groups, _, window = value.partition("@")
                sets = [_nodes(group, config.nodes) for group in groups.split("|")]
                faults.partitions.append((sets, *_window(window)))
            elif name == "skew":
                node, _, seconds = value.partition(":")
                (index,) = _nodes(node, config.nodes)
                faults.skew[index] = _number(seconds, "skew (seconds)", low=-3600.0, high=3600.0)
            elif name == "byzantine":
                node, _, kind = value.partition(":")
                if kind not in BYZANTINE_KINDS:
                    raise FaultSpecError(
                        f"byzantine kind {kind!r} is not one of {', '.join(BYZANTINE_KINDS)}"
                    )
                (index,) = _nodes(node, config.nodes)
                faults.byzantine[index] = kind
            else:
                raise FaultSpecError(f"unknown fault {name!r}")
        except FaultSpecError as exc:
            raise FaultSpecError(f"--faults {item!r}: {exc}") from None
        except ValueError:
            raise FaultSpecError(f"--faults {item!r}: not a valid value") from None
    config.faults = faults
    return config
