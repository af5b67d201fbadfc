"""What a command of ``appchain`` gives back: its exit status, and the errors that choose it.

Exit status:

====  =====================================================================================
0     success
1     a user mistake (bad genesis, missing or busy home, tampered export, bad value…): one
      ``error:`` line on stderr; the home is untouched
2     a usage error (unknown command or option, missing argument): argparse's message
3     corruption in the node's own database: one ``fatal:`` line naming what disagrees; the
      operator must act (restore, re-import, or replay from an export); nothing is written
4     ``simulate``: a safety property failed (roots differ, a final block forked, an honest
      double sign)
5     ``simulate``: safe, but the honest nodes did not finalize ``--blocks`` blocks in time
6     ``query``, ``tx``: a node answered something that does not verify; the evidence (its answer and
      every answer that verified) is printed as JSON on stdout
130   interrupted (Ctrl-C); an interrupted import is undone first
====  =====================================================================================

Anything else is a bug and shows its traceback.

Commands that print for scripts (``--json``) print one JSON object (:func:`print_json`).
"""

from __future__ import annotations

import json

from appchain.client.http import ServerError
from appchain.client.wallet import WalletError
from appchain.home.keyfile import KeyFileError
from appchain.home.safefile import UnsafeTarget
from consensus.light import Untrusted

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_USAGE = 2
EXIT_CORRUPT = 3
EXIT_UNSAFE = 4
EXIT_TARGET_MISSED = 5
EXIT_LIED = 6
"""``query``: a node answered something that does not verify; the evidence is printed."""
EXIT_INTERRUPTED = 130


class ClientError(Exception):
    """A user mistake in a client command: one ``error:`` line, exit 1."""


ClientErrors: tuple[type[Exception], ...] = (
    ClientError,
    KeyFileError,
    WalletError,
    ServerError,  # SourceError and the message client's errors among them
    Untrusted,
    UnsafeTarget,
)
"""What the client commands raise for a user's mistake or an unreachable or refusing node."""


def print_json(data: object) -> None:
    print(json.dumps(data, sort_keys=True))
