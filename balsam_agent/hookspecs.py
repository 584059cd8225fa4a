# Hook specifications have no bodies: pluggy never calls them.
# mypy: disable-error-code="empty-body"
"""Hook specifications of the ``balsam`` pluggy project.

Every hook is prefixed ``balsam_`` and documented with the same template: a summary, ``:param:`` per
argument, what it returns, whether only the first non-None result counts, and when it is called.
Registration hooks return typed records (:mod:`balsam_agent.records`); lifecycle hooks run for every
step. ``tests/test_hook_docs.py`` fails when a hook is undocumented in ``README.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from balsam_agent import hookspec

if TYPE_CHECKING:
    from balsam_agent.records import (
        ProcessHookRecord,
        SchedulerRecord,
        SiteProfile,
        StepContext,
        TransferRecord,
    )

# --- registration hooks: called once at agent start-up, results collected from every plugin ---


@hookspec
def balsam_schedulers() -> Iterable[SchedulerRecord]:
    """Offer scheduler backends.

    :return: records naming each backend; two backends with one name stop the agent at start-up.

    Called once at start-up, before the site's scheduler is looked up by name.
    """


@hookspec
def balsam_transfers() -> Iterable[TransferRecord]:
    """Offer transfer backends, one record per URL scheme.

    :return: records naming the scheme and the backend; a scheme offered twice stops the agent.

    Called once at start-up.
    """


@hookspec
def balsam_sites() -> Iterable[SiteProfile]:
    """Offer site profiles (scheduler, launch style, polling interval, limits, allowed directory).

    :return: profiles; the agent's configuration picks one by name and may override its fields.

    Called once at start-up.
    """


@hookspec
def balsam_process_hooks() -> Iterable[ProcessHookRecord]:
    """Offer named pre-/post-process hooks that steps can ask for by name.

    :return: records with the name and the callable; names must be unique across plugins.

    Called once at start-up.
    """


# --- lifecycle hooks: called for every step attempt, in the phase named ---


@hookspec
def balsam_preprocess(context: StepContext) -> None:
    """Run site-wide preparation for a step after its inputs are staged in.

    :param context: the step attempt (working directory, step fields, site).
    :return: nothing; raise to fail the step in its pre-process phase (the message is the reason).

    Called in the PREPROCESSING phase, before the step's own named pre-process hook or script.
    """


@hookspec
def balsam_postprocess(context: StepContext, exit_code: int | None) -> None:
    """Run site-wide work after a step's program ended, before its outputs are staged out.

    :param context: the step attempt, with its scheduler id.
    :param exit_code: the program's exit code, when the scheduler reported one.
    :return: nothing; raise to fail the step in its post-process phase.

    Called in the POSTPROCESSING phase, before the step's own named post-process hook or script.
    """


@hookspec
def balsam_step_error(context: StepContext, phase: str, reason: str) -> None:
    """Observe a step failure (clean-up, alerts).

    :param context: the failed step attempt.
    :param phase: the phase that failed (``stage_in``, ``preprocess``, ``submit``, ``run``,
        ``postprocess``, ``stage_out``).
    :param reason: the reason reported to the user.
    :return: nothing; exceptions are logged and ignored.

    Called once when a step attempt fails, after the failure is recorded.
    """


@hookspec
def balsam_step_timeout(context: StepContext) -> None:
    """Observe a step killed for exceeding its walltime.

    :param context: the step attempt.
    :return: nothing; exceptions are logged and ignored.

    Called once when the scheduler (or the local backend) reports a walltime overrun, before
    ``balsam_step_error``.
    """
