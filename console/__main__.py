"""`python -m console`: the same as `deploy-console`."""

import sys

from console.cli import main

sys.exit(main())
