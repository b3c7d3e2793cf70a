"""``python -m segmap.cli ...`` runs the ``segmap`` program."""

import sys

from segmap.cli.main import run

sys.exit(run())
