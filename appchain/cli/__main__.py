"""``python -m appchain.cli``: the ``appchain`` command, as the installed script runs it."""

import sys

from appchain.cli.main import main

sys.exit(main())
