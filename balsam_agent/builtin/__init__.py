"""Plugins shipped with the agent: the ``local`` scheduler and the ``file`` transfer.

They register through the ``balsam`` entry-point group exactly like external plugins.
"""
