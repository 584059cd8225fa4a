"""Site profiles of the HTCondor family."""

from __future__ import annotations

from balsam_agent.records import SiteProfile

#: The seed's ARGO cluster: an HTCondor pool next to the ARGO server, taking generated submit
#: descriptions, users' own ``condor_job_file`` and DAGMan workflows (``condor_dagman_file``).
ARGO_CLUSTER = SiteProfile(
    name="argo_cluster",
    scheduler="condor",
    launch_style="condor",
    # A local pool answers fast; every poll is one condor_q for all active steps.
    poll_interval=30.0,
    max_queued_steps=500,
    max_wall_minutes=7 * 24 * 60,
    options={"allow_user_submit_files": True},
)

#: Every profile this plugin offers.
PROFILES: tuple[SiteProfile, ...] = (ARGO_CLUSTER,)
