"""Site profiles of the Slurm family: the seed's Edison, NERSC's Perlmutter, and this machine's test cluster.

Values follow the sites' public documentation (NERSC "Queues and charges" / "Running jobs"); the agent's
configuration file overrides any field (project/account above all, which is per allocation).
"""

from __future__ import annotations

from balsam_agent.records import SiteProfile

#: Edison, the seed's Cray XC30 at NERSC (retired 2019): partition ``regular``, ranks started by srun.
EDISON = SiteProfile(
    name="edison",
    scheduler="slurm",
    launch_style="srun",
    poll_interval=60.0,
    queue="regular",
    max_queued_steps=100,
    max_nodes=5586,
    max_wall_minutes=36 * 60,
    options={"srun_args": ("--cpu_bind=cores",)},
)

#: Perlmutter (HPE Cray EX at NERSC): jobs choose CPU or GPU nodes with a constraint and a QOS.
PERLMUTTER = SiteProfile(
    name="perlmutter",
    scheduler="slurm",
    launch_style="srun",
    poll_interval=60.0,
    qos="regular",
    max_queued_steps=200,
    max_nodes=3072,
    max_wall_minutes=48 * 60,
    options={"constraint": "cpu", "srun_args": ("--cpu-bind=cores",)},
)

#: The single-node test cluster (``scripts/services/slurm``): partition ``debug``, 8 CPUs, fast polling.
SLURM_LOCAL = SiteProfile(
    name="slurm-local",
    scheduler="slurm",
    launch_style="srun",
    poll_interval=1.0,
    queue="debug",
    max_nodes=1,
    max_wall_minutes=60,
)

#: Every profile this plugin offers.
PROFILES = (EDISON, PERLMUTTER, SLURM_LOCAL)
