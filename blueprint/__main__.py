"""`python -m blueprint`: see `blueprint.cli`."""

import sys

from blueprint.cli import main

sys.exit(main())
