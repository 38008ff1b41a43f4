"""``python -m spherecodec.bench``: the same as ``spherecodec bench``."""

import sys

from .cli import main

sys.exit(main())
