"""Arrow vector columns and Parquet files: see :mod:`spherecodec.integrations.arrow`.

``import spherecodec`` does not import pyarrow; ``from spherecodec import arrow`` does
(the ``arrow`` extra).
"""

from .integrations.arrow import *  # noqa: F401,F403  (the public names, listed in __all__)
from .integrations.arrow import __all__  # noqa: F401
