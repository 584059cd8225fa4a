"""The plugin manager of the ``balsam`` project and the typed facade the agent calls.

One factory, :func:`get_plugin_manager`, builds the manager: it adds the hook specifications, loads
every plugin of the ``balsam`` entry-point group (the built-ins register through the same entry
points as external plugins) and checks that no plugin implements an unknown hook. The environment
variable ``BALSAM_DISABLE_PLUGIN_AUTOLOAD=1`` blocks external plugins; the built-ins still load.

:class:`Plugins` collects the registration hooks into dictionaries once, refusing duplicate names, and
offers one typed method per lifecycle hook so the agent's call sites are type-checked.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from balsam_agent import PROJECT, hookspecs
from balsam_agent.records import ProcessHookRecord, SchedulerRecord, SiteProfile, StepContext, TransferRecord
from balsam_agent.scheduler import SchedulerBackend
from balsam_agent.transfer import TransferBackend

log = logging.getLogger(__name__)

#: Environment variable that blocks plugins of other distributions (the built-ins still load).
DISABLE_AUTOLOAD_ENV = "BALSAM_DISABLE_PLUGIN_AUTOLOAD"

#: Modules registered by this distribution (the entry points of ``argo-balsam`` name them too).
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("local", "balsam_agent.builtin.local_scheduler"),
    ("file", "balsam_agent.builtin.file_transfer"),
)
_OWN_DISTRIBUTION = "argo-balsam"


class PluginError(Exception):
    """A plugin problem found at start-up: a duplicate name, an unknown name, a bad record."""


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() in ("1", "true", "yes")


def get_plugin_manager(*, load_entry_points: bool = True, extra_plugins: Iterable[object] = ()
                       ) -> pluggy.PluginManager:
    """Builds the ``balsam`` plugin manager: hookspecs, entry-point plugins, built-ins, extras.

    :param load_entry_points: load external plugins of the ``balsam`` entry-point group (also off
        when ``BALSAM_DISABLE_PLUGIN_AUTOLOAD=1``); the built-ins are always registered.
    :param extra_plugins: plugin objects (modules, classes, instances) to register as well, e.g. by
        tests and embedding applications.
    :return: a manager whose hooks were checked with ``check_pending()``.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    if load_entry_points and not _autoload_disabled():
        try:
            pm.load_setuptools_entrypoints(PROJECT)
        except Exception as exc:
            # A broken plugin stops the agent at start-up with its name, never half-way through a step.
            raise PluginError(f"cannot load a plugin of entry-point group {PROJECT!r}: "
                              f"{type(exc).__name__}: {exc} (set {DISABLE_AUTOLOAD_ENV}=1 to skip external "
                              "plugins)") from exc
    # Built-ins register like any plugin; when the entry points already loaded them, skip.
    for name, module_name in BUILTIN_PLUGINS:
        if pm.get_plugin(name) is None:
            module = importlib.import_module(module_name)
            if not pm.is_registered(module):
                pm.register(module, name=name)
    for plugin in extra_plugins:
        if not pm.is_registered(plugin):
            pm.register(plugin)
    pm.check_pending()
    return pm


@dataclass(frozen=True)
class PluginDescription:
    """What a loaded plugin is: its name, the version of its distribution, the hooks it implements."""

    name: str
    version: str
    hooks: tuple[str, ...]


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginDescription]:
    """Lists every registered plugin with its version (from importlib.metadata) and hooks."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    own_version = _own_version()
    described = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: str(item[0])):
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        if dist is not None:
            version = dist.version
        elif getattr(plugin, "__name__", "").startswith("balsam_agent."):
            version = own_version
        else:
            version = str(getattr(plugin, "__version__", "") or "")
        hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))
        described.append(PluginDescription(name=str(name), version=version, hooks=hooks))
    return described


def _own_version() -> str:
    try:
        return importlib.metadata.version(_OWN_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        from balsam_agent import __version__

        return __version__


def _collect(results: Iterable[Iterable[Any] | None]) -> list[Any]:
    collected: list[Any] = []
    for result in results:
        if result is None:
            continue
        collected.extend(result)
    return collected


class Plugins:
    """Typed facade over the plugin manager: registries by name and one method per lifecycle hook.

    Building it calls every registration hook once and raises :class:`PluginError` on duplicate names.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        hook = pm.hook
        self.schedulers: dict[str, type[SchedulerBackend]] = {}
        for record in _collect(hook.balsam_schedulers()):
            if not isinstance(record, SchedulerRecord):
                raise PluginError(f"balsam_schedulers returned {record!r}, not a SchedulerRecord")
            self._add(self.schedulers, "scheduler", record.name, record.backend)
        self.transfers: dict[str, type[TransferBackend]] = {}
        for record in _collect(hook.balsam_transfers()):
            if not isinstance(record, TransferRecord):
                raise PluginError(f"balsam_transfers returned {record!r}, not a TransferRecord")
            self._add(self.transfers, "transfer scheme", record.scheme, record.backend)
        self.sites: dict[str, SiteProfile] = {}
        for record in _collect(hook.balsam_sites()):
            if not isinstance(record, SiteProfile):
                raise PluginError(f"balsam_sites returned {record!r}, not a SiteProfile")
            self._add(self.sites, "site profile", record.name, record)
        self.process_hooks: dict[str, ProcessHookRecord] = {}
        for record in _collect(hook.balsam_process_hooks()):
            if not isinstance(record, ProcessHookRecord):
                raise PluginError(f"balsam_process_hooks returned {record!r}, not a ProcessHookRecord")
            self._add(self.process_hooks, "process hook", record.name, record)

    @staticmethod
    def _add(registry: dict[str, Any], kind: str, name: str, value: Any) -> None:
        if not name:
            raise PluginError(f"a plugin offered a {kind} without a name: {value!r}")
        if name in registry:
            raise PluginError(f"two plugins offer the {kind} {name!r}: {registry[name]!r} and {value!r}")
        registry[name] = value

    @staticmethod
    def _lookup(registry: Mapping[str, Any], kind: str, name: str) -> Any:
        try:
            return registry[name]
        except KeyError:
            valid = ", ".join(sorted(registry)) or "none installed"
            raise PluginError(f"unknown {kind} {name!r}; valid: {valid}") from None

    def scheduler(self, name: str) -> type[SchedulerBackend]:
        """Returns the scheduler backend class named ``name``, or fails listing the valid names."""
        return self._lookup(self.schedulers, "scheduler", name)  # type: ignore[no-any-return]

    def transfer(self, scheme: str) -> type[TransferBackend]:
        """Returns the transfer backend class for a URL scheme, or fails listing the valid schemes."""
        return self._lookup(self.transfers, "transfer scheme", scheme)  # type: ignore[no-any-return]

    def site(self, name: str) -> SiteProfile:
        """Returns the site profile named ``name``, or fails listing the valid names."""
        return self._lookup(self.sites, "site profile", name)  # type: ignore[no-any-return]

    def process_hook(self, name: str) -> ProcessHookRecord:
        """Returns the process hook named ``name``, or fails listing the valid names."""
        return self._lookup(self.process_hooks, "process hook", name)  # type: ignore[no-any-return]

    # --- lifecycle hooks ---

    def preprocess(self, context: StepContext) -> None:
        """Calls every ``balsam_preprocess`` implementation (an exception fails the step)."""
        self.pm.hook.balsam_preprocess(context=context)

    def postprocess(self, context: StepContext, exit_code: int | None) -> None:
        """Calls every ``balsam_postprocess`` implementation (an exception fails the step)."""
        self.pm.hook.balsam_postprocess(context=context, exit_code=exit_code)

    def step_error(self, context: StepContext, phase: str, reason: str) -> None:
        """Calls ``balsam_step_error``; exceptions are logged, never raised."""
        try:
            self.pm.hook.balsam_step_error(context=context, phase=phase, reason=reason)
        except Exception:
            log.exception("balsam_step_error hook failed for %s/%s", context.job_id, context.step_index)

    def step_timeout(self, context: StepContext) -> None:
        """Calls ``balsam_step_timeout``; exceptions are logged, never raised."""
        try:
            self.pm.hook.balsam_step_timeout(context=context)
        except Exception:
            log.exception("balsam_step_timeout hook failed for %s/%s", context.job_id, context.step_index)

    def describe(self) -> list[PluginDescription]:
        """Name, version and hooks of every loaded plugin."""
        return describe_plugins(self.pm)
