#!/bin/sh
# tansu on the kafka-data volume. It has one listener, so it advertises one
# address (TANSU_ADVERTISED_LISTENER_URL): docker-compose.local.yaml sets it to
# one that both the compose network and the host can reach.
set -eu
socat TCP-LISTEN:29092,fork,reuseaddr TCP:127.0.0.1:9092 &
# tansu 0.6.0 scans every stored header per fetched record unless this index
# exists (as scripts/stack does): add it once tansu has created its schema.
(until sqlite3 -cmd '.timeout 30000' tansu.db \
  'create index if not exists flts_header_record on header (topition, offset_id)' 2>/dev/null; do sleep 1; done) &
exec tansu broker \
  --listener-url "${TANSU_LISTENER_URL:-tcp://0.0.0.0:9092}" \
  --advertised-listener-url "${TANSU_ADVERTISED_LISTENER_URL:-tcp://kafka:9092}" \
  --storage-engine sqlite://tansu.db
