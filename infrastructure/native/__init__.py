"""The native stack (no Docker): real processes on this machine, mirroring the compose services."""
