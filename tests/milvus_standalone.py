"""A real Milvus standalone server (PyPI `milvus==2.3.5`: embedded etcd, local storage), no Docker.

Used by the test fixture and by scripts/scale.py. `milvus-server` is a Python wrapper that unpacks
the Milvus binary into its data folder, writes its config and runs `milvus run standalone` as a
child. The first start goes through it; a restart runs the unpacked binary directly on the same
config, because the wrapper moves to another port when the old one still has connections in
TIME_WAIT. Each start is a process group of its own, so that `kill()` is a real SIGKILL of the server.
Its embedded etcd always listens on 127.0.0.1:2379/2380: one standalone per machine at a time.
"""
from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymilvus import MilvusClient

SERVER = Path(sys.executable).parent / "milvus-server"
PORT_FLAGS = ("proxy", "proxy-internal", "root-coord", "query-coord", "query-node", "index-coord",
              "index-node", "data-coord", "data-node")


def free_ports(count: int, low: int = 20000, high: int = 32000) -> list[int]:
    """Free ports below the kernel's ephemeral range (32768 and up): a restarted server takes the same
    ports again, and meanwhile no outgoing connection of another process can be given one of them."""
    ports: list[int] = []
    for port in random.sample(range(low, high), high - low):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"no {count} free ports in [{low}, {high})")


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class MilvusStandalone:
    """Start, SIGKILL and restart one Milvus standalone on free ports over one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy']}"

    def start(self, timeout: float = 240) -> "MilvusStandalone":
        """Start and wait until a client can list collections (a restart after SIGKILL takes ~40 s)."""
        binary, config = self.data_dir / "bin" / "milvus", self.data_dir / "configs" / "milvus.yaml"
        if binary.exists() and config.exists():
            args = [str(binary), "run", "standalone"]
            env = {**os.environ, "DEPLOY_MODE": "STANDALONE", "METRICS_PORT": str(free_ports(1)[0]),
                   "MILVUS_RUN_DIR": str(self.data_dir / "run"),
                   "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(binary.parent),
                                                                    os.environ.get("LD_LIBRARY_PATH")]))}
        else:
            if not SERVER.exists():
                raise RuntimeError(f"{SERVER} is missing: pip install milvus==2.3.5")
            # a short session TTL lets a server restarted after SIGKILL take over its old session sooner
            args, env = [str(SERVER), "--data", str(self.data_dir), "--extra-config", "common.session.ttl=5"], None
            for flag, port in self.ports.items():
                args += [f"--{flag}-port", str(port)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=self.data_dir, env=env)
        self._wait(timeout, config)
        return self

    def _wait(self, timeout: float, config: Path) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"milvus-server exited with {self.proc.returncode}: see {self.log_path}")
            if config.exists():  # the port the wrapper really chose (it moves on from a busy one)
                found = re.search(r"^proxy:\n(?:[ #].*\n)*?  port: (\d+)", config.read_text(), re.MULTILINE)
                self.ports["proxy"] = int(found.group(1)) if found else self.ports["proxy"]
            if _port_open(self.ports["proxy"]) and self._answers():
                return
            time.sleep(0.25)
        raise RuntimeError(f"Milvus standalone did not answer on {self.uri} within {timeout} s: see {self.log_path}")

    def _answers(self) -> bool:
        try:
            client = MilvusClient(uri=self.uri, timeout=3)
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False
        try:
            client.list_collections()
            return True
        except Exception:  # noqa: BLE001
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL the wrapper and the Milvus binary, and wait until both are gone and the port is free."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                if not _port_open(self.ports["proxy"]):
                    break
            time.sleep(0.2)
        self.proc = None

    def pids(self) -> list[int]:
        """The server's processes (wrapper and Milvus binary), for RSS figures."""
        if self.proc is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == self.proc.pid:
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found
