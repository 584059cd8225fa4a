"""HTCondor site plugin for the Balsam agent: the ``condor`` scheduler and the ``argo_cluster`` site.

Submits a generated submit description, the user's own ``condor_job_file``, or a ``condor_dagman_file``
(through ``condor_submit_dag``, tracked as one unit by the DAGMan job's cluster id); polls every active
cluster with one ``condor_q -json`` and confirms vanished clusters with one ``condor_history -json``.
"""

__version__ = "0.1.0"
