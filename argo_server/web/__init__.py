"""The monitor web page served by ``argo-server`` on its own HTTP port (read-only)."""
