"""Balsam: the per-site agent of ARGO & Balsam.

Plugin authors import from here: :data:`hookimpl`, the records in :mod:`balsam_agent.records`, the base
classes in :mod:`balsam_agent.scheduler` and :mod:`balsam_agent.transfer`, and the pytest plugin
:mod:`balsam_agent.testing`.
"""

import pluggy

__version__ = "0.1.0"

#: Project name of the pluggy project and the entry-point group plugins register under.
PROJECT = "balsam"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "__version__", "hookimpl", "hookspec"]
