"""Globus transfer plugin of the Balsam agent: moves step files to and from ``globus://ENDPOINT/path``.

One Globus transfer task per step and direction carries all of the step's files between the site's own
endpoint (``SiteProfile.options["globus"]["local_endpoint"]``) and the remote one; see
:mod:`balsam_globus.backend` and, for the site options, :mod:`balsam_globus.options`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
