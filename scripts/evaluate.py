#!/usr/bin/env python
"""Evaluate a saved checkpoint (or a run folder's newest one) and write its sample grid PNG.

python scripts/evaluate.py outputs/runs/<run> [--n-samples N] [--out grid.png] [--json scores.json]
"""

import sys

from gan_exp.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
