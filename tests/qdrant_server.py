"""Real Qdrant servers for tests: one node, or a cluster of nodes on this machine, each on free
ports with its storage in a folder of the test's, stopped by pid (`make qdrant` installs the
pinned binary beside the virtual environment's Python)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

QDRANT = Path(sys.executable).parent / "qdrant"
_START_S = 60.0


def qdrant_installed() -> bool:
    return QDRANT.is_file() and os.access(QDRANT, os.X_OK)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Node:
    """One running Qdrant process, and how to start it again (same ports, same storage)."""

    process: subprocess.Popen[bytes]
    url: str
    p2p: str | None
    log: Path
    args: list[str]
    env: dict[str, str]

    def restart(self) -> None:
        """Start it again after `stop`, on its ports, with its storage; returns once ready."""
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(self.args, env=self.env, cwd=self.log.parent,
                                            stdout=output, stderr=output)  # fmt: skip
        _wait(self, self.ready)

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200

    def stop(self) -> None:
        """Stop it by pid (SIGTERM, then SIGKILL after 10 s)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_node(storage: Path, *, cluster: bool = False, bootstrap: str | None = None) -> Node:
    """A node with its storage in `storage`; in a cluster, the first node unless `bootstrap`
    names an existing node's p2p URL. Returns once it answers."""
    storage.mkdir(parents=True, exist_ok=True)
    http, grpc = _free_port(), _free_port()
    env = {
        **os.environ,
        "QDRANT__STORAGE__STORAGE_PATH": str(storage / "storage"),
        "QDRANT__STORAGE__SNAPSHOTS_PATH": str(storage / "snapshots"),
        "QDRANT__SERVICE__HOST": "127.0.0.1",
        "QDRANT__SERVICE__HTTP_PORT": str(http),
        "QDRANT__SERVICE__GRPC_PORT": str(grpc),
        "QDRANT__TELEMETRY_DISABLED": "true",
        "QDRANT__LOG_LEVEL": "WARN",
    }
    args, p2p = [str(QDRANT)], None
    if cluster:
        port = _free_port()
        p2p = f"http://127.0.0.1:{port}"
        env |= {"QDRANT__CLUSTER__ENABLED": "true", "QDRANT__CLUSTER__P2P__PORT": str(port)}
        args += ["--uri", p2p] + (["--bootstrap", bootstrap] if bootstrap else [])
    log = storage / "qdrant.log"
    with log.open("wb") as output:
        process = subprocess.Popen(args, env=env, cwd=storage, stdout=output, stderr=output)
    node = Node(process, f"http://127.0.0.1:{http}", p2p, log, args, env)
    _wait(node, node.ready)
    return node


def _wait(node: Node, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + _START_S
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise RuntimeError(f"qdrant exited ({node.process.returncode}): {node.log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if ready():
                return
        time.sleep(0.2)
    node.stop()
    raise RuntimeError(f"qdrant did not get ready in {_START_S:g} s: {node.log.read_text()}")


@contextlib.contextmanager
def running_cluster(folder: Path, nodes: int = 2) -> Iterator[list[Node]]:
    """`nodes` nodes in one cluster (the first bootstraps the others), once all are peers."""
    started = [start_node(folder / "node-0", cluster=True)]
    try:
        for number in range(1, nodes):
            started.append(
                start_node(folder / f"node-{number}", cluster=True, bootstrap=started[0].p2p)
            )

        def all_peers() -> bool:
            result = httpx.get(f"{started[0].url}/cluster", timeout=2).json()["result"]
            return len(result["peers"]) == nodes and result["raft_info"]["leader"] is not None

        _wait(started[0], all_peers)
        yield started
    finally:
        for node in reversed(started):
            node.stop()


@contextlib.contextmanager
def running_node(folder: Path) -> Iterator[Node]:
    """One node on its own."""
    node = start_node(folder)
    try:
        yield node
    finally:
        node.stop()
