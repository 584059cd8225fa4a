"""Generated protobuf and gRPC code of ARGO & Balsam (from proto/; do not edit)."""
