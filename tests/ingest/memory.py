"""Memory of the processes below this one, sampled while they run."""

import os
import threading
from collections.abc import Iterator
from pathlib import Path


class MemorySampler:
    """Samples the proportional set size (PSS) of every process below this one and sums it:
    what the conversion workers and their pandoc children hold at once, shared pages counted
    once between them, as in the machine's RAM.

    `peak_mb` is the largest sum seen; `peak_anon_mb` the largest sum of the anonymous part
    (what the processes allocated: heaps, buffers; the rest is their programs' pages, which
    the kernel can drop and read again), with each process's (PSS, anonymous) MB at that
    moment in `peak_processes`. Every 50 ms: a pandoc heap at its cap stays there for
    seconds. (getrusage(RUSAGE_CHILDREN) cannot tell this: the workers are the fork server's
    children, and it reports the largest process that ended, not a sum of those running.)
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        self.peak_mb = self.peak_anon_mb = 0.0
        self.peak_processes: dict[str, tuple[float, float]] = {}
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            sizes = {name: _pss_mb(pid) for pid, name in _descendants(os.getpid())}
            total = sum(pss for pss, _ in sizes.values())
            anon = sum(anon for _, anon in sizes.values())
            if anon > self.peak_anon_mb:
                self.peak_anon_mb, self.peak_processes = anon, sizes
            self.peak_mb = max(self.peak_mb, total)


def _descendants(root: int) -> Iterator[tuple[int, str]]:
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1]
            children.setdefault(int(fields.split()[1]), []).append((int(entry.name), name))
    pending = [root]
    while pending:
        for pid, name in children.get(pending.pop(), []):
            yield pid, f"{name}[{pid}]"
            pending.append(pid)


def _pss_mb(pid: int) -> tuple[float, float]:
    """A process's PSS and the anonymous part of it, in MB."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:  # it ended meanwhile
        return 0.0, 0.0
    fields = dict(line.split(":", 1) for line in rollup.splitlines()[1:])
    return int(fields["Pss"].split()[0]) / 1024, int(fields["Pss_Anon"].split()[0]) / 1024
