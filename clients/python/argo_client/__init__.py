"""Python client and argo CLI of ARGO & Balsam."""
