"""Site profiles of the Cobalt machines the seed ran on (ALCF, 2014-2016).

Sizes from ALCF's machine descriptions: Mira (BG/Q, 49,152 nodes), Vesta (BG/Q test and development,
2,048 nodes), Tukey (x86 visualisation cluster, 96 nodes). Queues and projects are the defaults an agent's
configuration is expected to override; the seed's Vesta agent polled every 5 minutes.
"""

from __future__ import annotations

from balsam_agent.records import SiteProfile

MIRA = SiteProfile(
    name="mira", scheduler="cobalt", launch_style="cobalt-mode", poll_interval=60.0,
    queue="default", max_nodes=49152, options={"cobaltlog_dir": ""},
)

VESTA = SiteProfile(
    name="vesta", scheduler="cobalt", launch_style="runjob", poll_interval=300.0,
    queue="default", max_nodes=2048, options={"cobaltlog_dir": ""},
)

TUKEY = SiteProfile(
    name="tukey", scheduler="cobalt", launch_style="mpirun", poll_interval=60.0,
    queue="default", max_nodes=96, options={"cobaltlog_dir": ""},
)

PROFILES: tuple[SiteProfile, ...] = (MIRA, VESTA, TUKEY)
