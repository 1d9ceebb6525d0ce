#!/bin/sh
# garage as the `minio` service: S3 API on :9000 (as MinIO), region us-east-1
# (what every FLTS service and MLflow send), data and metadata on the
# minio-data volume at /data, and the config written there too so that the
# bucket bootstrap (garage-init.sh), which mounts the same volume, can reach it.
set -eu
mkdir -p /data/meta /data/data
cat >/data/garage.toml <<CONF
metadata_dir = "/data/meta"
data_dir = "/data/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "0.0.0.0:3901"
rpc_secret = "${GARAGE_RPC_SECRET:?GARAGE_RPC_SECRET is required}"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "0.0.0.0:9000"
root_domain = ".s3.minio.localhost"

[admin]
api_bind_addr = "0.0.0.0:3903"
CONF
exec garage -c /data/garage.toml server
