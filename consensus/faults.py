"""The ``--faults`` specification of ``appchain simulate``.

A comma-separated list of items (times in simulated seconds from genesis)::

    loss=0.05                 packet loss probability (TCP retransmits: messages arrive late)
    latency=0.1               one-way latency, seconds (jitter=0.05 adds up to that much)
    crash=3@5-40              node 3 is down from t=5 to t=40 (repeat the item for more)
    partition=0-9|10-29@6-40  nodes 0..9 and 10..29 cannot talk from t=6 to t=40
    skew=4:0.5                node 4's clock is 0.5 s ahead
    byzantine=1:withhold      node 1 withholds; also equivocate, double-sign, garbage
"""

from __future__ import annotations

from consensus.simulator import Faults, SimConfig

BYZANTINE_KINDS = ("equivocate", "withhold", "double-sign", "garbage")


class FaultSpecError(ValueError):
    """A ``--faults`` item that cannot be read."""


def _nodes(text: str, count: int) -> set[int]:
    nodes: set[int] = set()
    for part in text.split("+"):
        low, _, high = part.partition("-")
        first, last = int(low), int(high or low)
        if not 0 <= first <= last < count:
            raise FaultSpecError(f"node range {part!r} is outside 0..{count - 1}")
        nodes.update(range(first, last + 1))
    return nodes


def _window(text: str) -> tuple[float, float]:
    start, _, end = text.partition("-")
    low, high = float(start), float(end)
    if not 0 <= low < high:
        raise FaultSpecError(f"time window {text!r} must be start-end with start < end")
    return low, high


def parse_faults(spec: str, config: SimConfig) -> SimConfig:
    """``config`` with the faults of ``spec`` applied; raises :class:`FaultSpecError`."""
    faults = Faults()
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, value = item.partition("=")
        try:
            if name == "loss":
                faults.loss = float(value)
                if not 0 <= faults.loss < 1:
                    raise FaultSpecError("loss is a probability in [0, 1)")
            elif name == "latency":
                config.latency = float(value)
            elif name == "jitter":
                config.jitter = float(value)
            elif name == "crash":
                node, _, window = value.partition("@")
                (index,) = _nodes(node, config.nodes)
                faults.crashes.append((index, *_window(window)))
            elif name == "partition":
                groups, _, window = value.partition("@")
                sets = [_nodes(group, config.nodes) for group in groups.split("|")]
                faults.partitions.append((sets, *_window(window)))
            elif name == "skew":
                node, _, seconds = value.partition(":")
                (index,) = _nodes(node, config.nodes)
                faults.skew[index] = float(seconds)
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
