#!/bin/sh
# One-shot setup against a running Prefect server (PREFECT_API_URL) and the app database (NIGHTBATCH_DATABASE_URL).
# Safe to run again: every step is skipped or updated in place when it was done before.
# Run it from the directory the workers load the flows from (the image's /opt/nightbatch, or your checkout).
set -eu

POOL="${NIGHTBATCH_WORK_POOL:-nightbatch}"

echo "migrating the nightbatch database"
nightbatch db upgrade

if prefect work-pool inspect "$POOL" >/dev/null 2>&1; then
  echo "work pool $POOL exists"
else
  prefect work-pool create "$POOL" --type process
fi

# At most one submission at a time across all workers (see docs/production.md, "Scale-out").
if prefect gcl inspect nightbatch-submit >/dev/null 2>&1; then
  echo "global concurrency limit nightbatch-submit exists"
else
  prefect gcl create nightbatch-submit --limit 1
fi

prefect --no-prompt deploy --all --prefect-file deployments/prefect.yaml
