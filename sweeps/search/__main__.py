"""``python -m sweeps.search ...`` (or ``python sweeps/search ...``): see :mod:`sweeps.search`."""

import sys

from sweeps.search.cli import main

sys.exit(main())
