"""Slurm site family for the Balsam agent: the ``slurm`` scheduler backend and its site profiles.

The agent finds this plugin through the ``balsam`` entry-point group (:mod:`balsam_slurm.plugin`).
"""

__version__ = "0.1.0"
