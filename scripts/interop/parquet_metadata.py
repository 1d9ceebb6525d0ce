"""What Arrow readers see of a Parquet file's schema metadata.

    python parquet_metadata.py FILE

Prints one JSON object: the schema metadata of pyarrow.parquet.read_schema,
that of the table pyarrow reads (what pandas gets through to_pandas), and the
column names and types. tests/interop.rs runs it on processed Parquet.
"""

import json
import sys

import pyarrow.parquet as pq


def decoded(metadata):
    return {k.decode(): v.decode() for k, v in (metadata or {}).items()}


def main(path: str) -> None:
    schema = pq.read_schema(path)
    table = pq.read_table(path)
    frame = table.to_pandas()
    print(json.dumps({
        "read_schema": decoded(schema.metadata),
        "read_table": decoded(table.schema.metadata),
        "columns": {f.name: str(f.type) for f in schema},
        "rows": len(frame),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
