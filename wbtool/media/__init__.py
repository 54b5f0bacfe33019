"""Media that runs log and artifacts hold: ``wbtool.Image``, ``wbtool.Histogram``,
``wbtool.Table``, ``wbtool.Audio``, ``wbtool.Video``, ``wbtool.Html`` and
``wbtool.Object3D``, named and shaped as the W&B SDK's.

Logged by ``run.log``, each but a histogram is written as a file into the
run's ``media/`` folder and the history row holds a small dict that points to
it; a histogram is held in the row itself. None of numpy, Pillow, pandas or
matplotlib is needed: each is used when the data comes from it.
"""

from __future__ import annotations

from wbtool.media.audio import Audio
from wbtool.media.histogram import Histogram
from wbtool.media.html import Html
from wbtool.media.image import Image
from wbtool.media.object3d import Object3D
from wbtool.media.table import Table
from wbtool.media.video import Video

__all__ = ["Audio", "Histogram", "Html", "Image", "Object3D", "Table", "Video"]
