"""Site profiles of ALCF's PBS Professional machines.

Polaris: 560 nodes of 32 cores (64 hardware threads) and 4 GPUs, queues ``debug``/``prod``, file systems
``home:eagle``. Aurora: 10,624 nodes of 2×52 cores and 6 GPUs, file systems ``home:flare``. Ranks start with
``mpiexec`` (Cray MPICH's PALS). Projects are the agent configuration's to set.
"""

from __future__ import annotations

from balsam_agent.records import SiteProfile

POLARIS = SiteProfile(
    name="polaris", scheduler="pbs", launch_style="mpiexec", poll_interval=60.0, queue="prod",
    max_nodes=560, max_wall_minutes=24 * 60,
    options={"filesystems": "home:eagle", "ncpus_per_node": 64},
)

AURORA = SiteProfile(
    name="aurora", scheduler="pbs", launch_style="mpiexec", poll_interval=60.0, queue="prod",
    max_nodes=10624, max_wall_minutes=18 * 60,
    options={"filesystems": "home:flare", "ncpus_per_node": 208},
)

PROFILES: tuple[SiteProfile, ...] = (POLARIS, AURORA)
