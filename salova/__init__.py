"""salova: Segment-Augmented Long Video Assistant (SALOVA, CVPR 2025) as a library."""

import logging

__version__ = "0.1.0"

# One named logger with no handlers; the CLI decides where messages go.
logging.getLogger("salova").addHandler(logging.NullHandler())
