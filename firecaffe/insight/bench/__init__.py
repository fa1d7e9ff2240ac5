"""Benchmarks of gradient reduction and the alpha-beta-gamma model fitted to them.

``model`` (cost formulas and the fit), ``comm`` (the MPI benchmark), ``report``
(reading results, Markdown), ``plot`` (figures), ``cli`` (the ``firecaffe bench``
group). Importing this package needs neither mpi4py nor matplotlib.
"""
