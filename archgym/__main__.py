"""``python -m archgym`` = the ``archgym`` command."""

import sys

from .cli import main

sys.exit(main())
