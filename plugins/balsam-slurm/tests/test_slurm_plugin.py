"""Registration: the ``balsam`` entry point, the hook implementations and the site profiles."""

from __future__ import annotations

from importlib.metadata import entry_points

import balsam_slurm.plugin
import pluggy
from balsam_slurm.backend import SlurmScheduler

from balsam_agent import PROJECT, hookspecs


def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(balsam_slurm.plugin)
    pm.check_pending()
    return pm


def test_entry_point_names_the_plugin_module() -> None:
    (entry,) = [e for e in entry_points(group=PROJECT) if e.name == "slurm"]
    assert entry.load() is balsam_slurm.plugin


def test_registers_the_slurm_backend() -> None:
    records = [r for batch in plugin_manager().hook.balsam_schedulers() for r in batch]
    assert [(r.name, r.backend) for r in records] == [("slurm", SlurmScheduler)]
    assert SlurmScheduler.name == "slurm"


def test_site_profiles() -> None:
    sites = {s.name: s for batch in plugin_manager().hook.balsam_sites() for s in batch}
    assert set(sites) == {"edison", "perlmutter", "slurm-local"}
    assert all(s.scheduler == "slurm" and s.launch_style == "srun" for s in sites.values())
    assert sites["slurm-local"].queue == "debug"
    assert sites["perlmutter"].options["constraint"] == "cpu"
