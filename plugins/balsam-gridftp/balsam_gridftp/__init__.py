"""GridFTP transfer plugin of the Balsam agent: moves step files over ``gsiftp://`` and ``ftp://``.

The bytes are moved by ``globus-url-copy`` (one child process per file or directory, argv only, never a
shell); see :mod:`balsam_gridftp.backend` for the backend and :mod:`balsam_gridftp.options` for the site
options it reads from ``SiteProfile.options["gridftp"]``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
