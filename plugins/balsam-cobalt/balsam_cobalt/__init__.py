"""Balsam site plugin for the Cobalt scheduler of ALCF's Mira, Vesta (BG/Q) and Tukey (x86) machines.

Modules: :mod:`.states` (Cobalt state → agent state table), :mod:`.commands` (argv builders and
batch-script renderers), :mod:`.parsers` (output parsers), :mod:`.backend` (the scheduler backend),
:mod:`.profiles` (site profiles), :mod:`.plugin` (pluggy registration) and :mod:`.simulator` (a
command-line Cobalt simulator for tests; it is not Cobalt).
"""

__version__ = "0.1.0"
