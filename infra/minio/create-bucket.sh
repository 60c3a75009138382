#!/bin/sh
# One-shot MinIO setup for the compose stack: the `nightbatch` bucket with default encryption, no anonymous
# access, and a least-privilege user for the workers (policy: worker-policy.json beside this file).
# Safe to run on every `docker compose up`.
set -eu

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing local/nightbatch
mc encrypt set sse-s3 local/nightbatch
mc anonymous set none local/nightbatch

mc admin policy create local nightbatch-worker /etc/nightbatch-minio/worker-policy.json
mc admin user add local "$NIGHTBATCH_S3_ACCESS_KEY_ID" "$NIGHTBATCH_S3_SECRET_ACCESS_KEY"
# Attaching twice is an error in mc; on a re-run the policy is already attached.
mc admin policy attach local nightbatch-worker --user "$NIGHTBATCH_S3_ACCESS_KEY_ID" || true
echo "bucket nightbatch ready; workers use the access key $NIGHTBATCH_S3_ACCESS_KEY_ID"
