"""Whether a committed figure is what the current code draws from the committed records.

A figure made by firecaffe's plots carries what it draws (``plot.figure_data``). Two figures are
the same when that data is; and when both were drawn by the same matplotlib (the PNG's ``Software``
text), when every pixel is too (Agg with matplotlib's own fonts draws the same pixels for the same
data and version). Across matplotlib versions only the data is compared.
"""
import numpy as np
from PIL import Image

from firecaffe.insight.bench.plot import figure_data


def figure_differs(committed, fresh):
    """None if the figure at ``committed`` is the one just drawn at ``fresh``, else why not."""
    if not committed.exists():
        return "missing"
    have = figure_data(committed)
    if have is None:
        return "carries no data: drawn before figures recorded what they draw"
    if have != figure_data(fresh):
        return "draws other data than the current code from the committed records"
    with Image.open(committed) as a, Image.open(fresh) as b:
        if a.text.get("Software") != b.text.get("Software"):
            return None                       # another matplotlib: pixels may differ, the data does not
        if a.size != b.size or not np.array_equal(np.asarray(a.convert("RGBA")), np.asarray(b.convert("RGBA"))):
            return "other pixels, same data and matplotlib"
    return None
