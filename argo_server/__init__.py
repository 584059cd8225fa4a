"""ARGO server."""
