"""Report files Floe publishes (the freshness chart), and a URL a browser can open them with.

The file is written with pyiceberg's FileIO and the catalog's properties, so it needs no
credentials of its own. For S3 the URL is presigned (valid for a week, S3's longest), because
the Prefect UI shows images by URL only (its markdown refuses ``data:`` URIs); a file on a local
disk gets no URL. Not beside the tables: a table bucket (S3 Tables) refuses other objects.
"""

from __future__ import annotations

import boto3
from botocore.config import Config
from pyiceberg.io import load_file_io

_WEEK = 7 * 24 * 3600


def publish(properties: dict[str, str], path: str, data: bytes) -> str | None:
    """Write *data* at *path* with the catalog's *properties*; its URL, if it has one."""
    io = load_file_io(properties, path)
    with io.new_output(path).create(overwrite=True) as out:
        out.write(data)
    if not path.startswith(("s3://", "s3a://")):
        return None
    bucket, _, key = path.split("://", 1)[1].partition("/")
    path_style = properties.get("s3.path-style-access", "false").lower() == "true"
    client = boto3.client(
        "s3",
        endpoint_url=properties.get("s3.endpoint"),
        aws_access_key_id=properties.get("s3.access-key-id"),
        aws_secret_access_key=properties.get("s3.secret-access-key"),
        aws_session_token=properties.get("s3.session-token"),
        region_name=properties.get("s3.region", "us-east-1"),
        config=Config(signature_version="s3v4", s3={"addressing_style": "path" if path_style else "auto"}),
    )
    return client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=_WEEK)
