#!/bin/sh
# The minio-init job for garage: one node layout, the MINIO_ROOT_USER key and
# the same five buckets as docker-compose.yaml's `mc mb` loop (idempotent).
set -eu
conf=/data/garage.toml
i=0
until [ -s /data/meta/node_key.pub ] && [ -s $conf ]; do
  i=$((i + 1)); [ $i -lt 120 ] || { echo "garage has not written its node key" >&2; exit 1; }
  sleep 0.5
done
node=$(od -An -tx1 -v /data/meta/node_key.pub | tr -d ' \n')
addr=$(getent hosts minio | awk '{print $1; exit}')
g() { garage -c $conf -h "$node@$addr:3901" "$@"; }
i=0
until g status >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 120 ] || { g status; exit 1; }
  sleep 0.5
done
if ! g layout show 2>/dev/null | grep -q 'Current cluster layout version: [1-9]'; then
  g layout assign -z dc1 -c 1G "$(echo "$node" | cut -c1-16)" >/dev/null
  g layout apply --version 1 >/dev/null
fi
g key info "$MINIO_ROOT_USER" >/dev/null 2>&1 \
  || g key import --yes "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" -n flts >/dev/null
for b in raw-data processed-data mlflow model-promotion inference-logs; do
  g bucket info "$b" >/dev/null 2>&1 || g bucket create "$b" >/dev/null
  g bucket allow --read --write --owner "$b" --key "$MINIO_ROOT_USER" >/dev/null
done
echo "garage: layout, key and buckets ready"
