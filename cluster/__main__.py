"""``python -m turnstile.cluster``: the same as the ``turnstile`` command."""

import sys

from turnstile.cluster.cli import main

sys.exit(main())
