"""One memory budget for all conversions at once, and how a worker measures what it holds.

ARCHIVIST_CONVERT_MEMORY_MB bounds the conversion processes together, not each one: under the
old cap per process, two pandoc processes held 2.2 + 1.4 GB at once with the 2 GB default, and
the hostile corpus (tests/ingest/test_hostile_corpus.py, 512 MB) had its conversions allocate
1,210 MB at once (1,314 MB with their programs' pages; two pandoc processes at ~500 MB each).
Now each worker converts within an equal share: its anonymous address space is capped at it
(cap_address_space), and the pandoc it starts gets what the worker does not hold itself. A
file that runs out of its share is converted again alone, with the whole budget, while the
other workers stop and wait: a file fits as it did before, and the same corpus peaked at
458-469 MB allocated (551-574 MB in all); at the default 2048 MB, two pandoc bombs side by
side peaked at 1,862 MB (1,969). Memory here is what processes allocate (anonymous memory);
their programs' pages are shared and the kernel can drop them.
"""

import contextlib
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

MB = 1024 * 1024
# A worker holds ~55 MB before it reads a file (the interpreter, pdfium and the tokenizer;
# its address space is ~250 MB): a smaller share leaves too little for pandoc to start.
MIN_SHARE_MB = 256
_PAGE = os.sysconf("SC_PAGE_SIZE")
_WATCH_INTERVAL_S = 0.01


class MemoryBudget:
    """Shares of the budget for conversions side by side, or all of it for one alone.

    A conversion alone waits until none runs beside it, and keeps new ones from starting
    meanwhile (so a file that needs it is not starved); the workers waiting give back what
    they hold (`idle()`: their process stops, to start again when their turn comes).
    """

    def __init__(self, total_mb: int, conversions: int) -> None:
        self.total_mb = total_mb
        self.share_mb = total_mb // conversions
        self._changed = threading.Condition()
        self._sharing = 0
        self._alone = False
        self._waiting_alone = 0

    @staticmethod
    def conversions(total_mb: int, workers: int) -> int:
        """How many conversions may run at once: no more than the workers, and none with a
        share under MIN_SHARE_MB."""
        return max(1, min(workers, total_mb // MIN_SHARE_MB))

    @contextlib.contextmanager
    def share(self, idle: Callable[[], None]) -> Iterator[int]:
        """Run beside the others, within a share (MB, yielded); `idle()` frees the worker's
        memory when a conversion alone has to wait for it, or is running."""
        with self._changed:
            if self._alone or self._waiting_alone:
                idle()
            self._changed.wait_for(lambda: not self._alone and not self._waiting_alone)
            self._sharing += 1
        try:
            yield self.share_mb
        finally:
            with self._changed:
                if self._waiting_alone:
                    idle()
                self._sharing -= 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def whole(self, idle: Callable[[], None]) -> Iterator[int]:
        """Run alone, with the whole budget (MB, yielded); `idle()` as for `share`."""
        with self._changed:
            if self._sharing or self._alone:
                idle()
            self._waiting_alone += 1
            self._changed.wait_for(lambda: not self._sharing and not self._alone)
            self._waiting_alone -= 1
            self._alone = True
        try:
            yield self.total_mb
        finally:
            with self._changed:
                self._alone = False
                self._changed.notify_all()


def cap_address_space(memory_mb: int) -> int:
    """Cap this process's address space at `memory_mb` of anonymous memory beside the program
    files it maps: past it, allocations fail (MemoryError in Python). Returns the cap, in bytes.

    Anonymous address space bounds what the process can hold (malloc's reserved arenas can
    become resident without the address space growing, so they count as held). Program
    files' pages do not count: a worker maps ~100 MB of them before it reads a file, and
    capped at a 256 MB share with them it had 10 MB to allocate (pdfium aborted on its first
    10 MB buffer for a content stream before the worker grew at all: a crash no one could
    tell from a converter bug). Now it has ~100 MB: ~155 MB of the share is already its own
    (55 MB allocated, the rest arenas and heap it reserved).
    """
    cap = address_space() + memory_mb * MB - _anonymous_address_space()
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.RLIM_INFINITY))
    return cap


def _anonymous_address_space() -> int:
    """The bytes of this process's mappings that no file backs (heap, stacks, reservations)."""
    total = 0
    with open("/proc/self/maps", "rb") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            name = fields[5].strip() if len(fields) > 5 else b""
            if not name or name in (b"[heap]", b"[stack]") or name.startswith(b"[anon"):
                start, end = (int(bound, 16) for bound in fields[0].split(b"-"))
                total += end - start
    return total


def held_mb() -> int:
    """What this process holds against its conversion budget: its anonymous resident memory
    (what it allocated; program files' pages are shared, and the kernel can drop them) when it
    is a worker, whose address-space cap covers it and the pandoc it starts; nothing when it
    is not (a test converting in its own process is accounted elsewhere)."""
    if resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY:
        return 0
    with open("/proc/self/status", "rb") as status:
        line = next((line for line in status if line.startswith(b"RssAnon:")), b"- 0 kB")
    return int(line.split()[1]) // 1024


def address_space() -> int:
    """This process's address space, in bytes."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[0]) * _PAGE


def watch_address_space(record: Any) -> None:
    """Keep `record[1]` at the largest address space seen since `record[0]` was set (run on a
    thread of its own, for ever).

    pdfium and the tokenizer do not raise MemoryError when the cap stops them: they abort
    the process. What this thread saw is how the parent tells that from a converter bug.
    Sampling every 10 ms (0.8% of a core) saw 252-255, 506-511 and 1018-1023 MB before pdfium
    aborted under caps of 256, 512 and 1024 MB (its calls let the thread run); under 2048 MB,
    one 800 MB buffer failed at 1257 MB, still past half of what the cap left.
    """
    try:
        statm = open("/proc/self/statm", "rb")  # noqa: SIM115 (held open for ever)
    except OSError:  # no /proc: crashes stay unexplained
        return
    while True:
        statm.seek(0)
        size = int(statm.read().split()[0]) * _PAGE
        if size > record[1]:
            record[1] = size
        time.sleep(_WATCH_INTERVAL_S)


def ran_out(record: Any) -> bool:
    """Whether a worker that died had used at least half of what its cap left it: a native
    converter that gave up on memory, rather than one that crashed on a bug. `record` is
    [address space at the start of its file, the largest since, its cap] (bytes)."""
    start, peak, cap = record[0], record[1], record[2]
    return peak - start >= (cap - start) / 2
