"""`python -m console.metrics.statsd`: the collector (see `console.metrics.statsd.cli`)."""

import sys

from console.metrics.statsd.cli import main

if __name__ == "__main__":  # imported, as the architecture test imports every module, it runs nothing
    sys.exit(main())
