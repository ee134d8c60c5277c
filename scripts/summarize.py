"""Summarise a multirun folder: `python scripts/summarize.py outputs/multirun/<sweep>`.

The work is in `gan_exp/summary.py` (also installed as `gan-exp-summarize`).
"""

import sys

from gan_exp.summary import main

if __name__ == "__main__":
    sys.exit(main())
