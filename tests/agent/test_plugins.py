"""The plugin manager: built-ins through entry points, duplicates refused, unknown names listed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from balsam_agent import hookimpl
from balsam_agent.builtin.file_transfer import FileTransfer
from balsam_agent.builtin.local_scheduler import LocalScheduler
from balsam_agent.plugin_manager import PluginError
from balsam_agent.records import SchedulerRecord, SiteProfile, TransferRecord


class DuplicateLocal:
    @hookimpl
    def balsam_schedulers(self):
        return [SchedulerRecord(name="local", backend=LocalScheduler)]


class DuplicateFile:
    @hookimpl
    def balsam_transfers(self):
        return [TransferRecord(scheme="file", backend=FileTransfer)]


class MiraSite:
    @hookimpl
    def balsam_sites(self):
        return [SiteProfile(name="mira", scheduler="cobalt", poll_interval=300)]


def test_builtins_are_registered(balsam_plugins) -> None:
    plugins = balsam_plugins()
    assert plugins.scheduler("local") is LocalScheduler
    assert plugins.transfer("file") is FileTransfer
    assert plugins.site("local").scheduler == "local"
    described = {d.name: d for d in plugins.describe()}
    assert described["local"].hooks == ("balsam_schedulers", "balsam_sites")
    assert described["local"].version


@pytest.mark.parametrize("plugin", [DuplicateLocal(), DuplicateFile()])
def test_duplicate_names_are_refused(balsam_plugins, plugin) -> None:
    with pytest.raises(PluginError, match="two plugins offer"):
        balsam_plugins(plugin)


def test_unknown_names_list_the_valid_ones(balsam_plugins) -> None:
    plugins = balsam_plugins(MiraSite())
    with pytest.raises(PluginError, match=r"unknown scheduler 'slurm'; valid: local"):
        plugins.scheduler("slurm")
    with pytest.raises(PluginError, match=r"unknown transfer scheme 'gsiftp'; valid: file"):
        plugins.transfer("gsiftp")
    with pytest.raises(PluginError, match=r"valid: local, mira"):
        plugins.site("edison")


def test_unknown_hook_implementation_fails_at_start(balsam_plugins) -> None:
    class Typo:
        @hookimpl
        def balsam_preproces(self, context):
            pass

    from pluggy import PluginValidationError

    with pytest.raises(PluginValidationError):
        balsam_plugins(Typo())


def test_plugins_command_prints_what_is_installed() -> None:
    out = subprocess.run([sys.executable, "-m", "balsam_agent.cli", "plugins"], capture_output=True, text=True,
                         env={"BALSAM_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "schedulers: local" in out.stdout
    assert "transfers: file" in out.stdout
    assert "site profiles: local" in out.stdout
    assert "hooks: balsam_schedulers, balsam_sites" in out.stdout
