#!/bin/sh
# One-shot: the buckets named as arguments, on the endpoint of mc's `store` alias (MC_HOST_store, set by
# compose from .env). Idempotent, like the native stack's create_buckets().
set -eu
for bucket in "$@"; do
    mc mb --ignore-existing "store/$bucket"
done
