"""Balsam site plugin for PBS Professional on ALCF's Polaris and Aurora.

Modules: :mod:`.states`, :mod:`.commands`, :mod:`.parsers`, :mod:`.backend`, :mod:`.profiles`,
:mod:`.plugin`, and :mod:`.simulator` (a command-line PBS simulator for tests; it is not PBS).
"""

__version__ = "0.1.0"
