"""`python -m evalbench` (and `torchrun ... -m evalbench run ...`): the CLI."""
import sys

from .cli import main

sys.exit(main())
