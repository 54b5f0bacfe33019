"""Media that runs log and artifacts hold: ``wbtool.Image``, ``wbtool.Histogram``
and ``wbtool.Table``, named and shaped as the W&B SDK's.

Logged by ``run.log``, an image or a table is written as a file into the
run's ``media/`` folder and the history row holds a small dict that points to
it; a histogram is held in the row itself. None of numpy, Pillow, pandas or
matplotlib is needed: each is used when the data comes from it.
"""

from __future__ import annotations

from wbtool.media.histogram import Histogram
from wbtool.media.image import Image
from wbtool.media.table import Table

__all__ = ["Histogram", "Image", "Table"]
