"""``python -m cadence`` runs the command line (also under torchrun: ``torchrun -m cadence train ...``)."""

import sys

from cadence.cli.main import main

sys.exit(main())
