"""Connecting to a SQLite database in WAL mode, waiting for other processes' locks."""

import random
import sqlite3
import time
from pathlib import Path

TIMEOUT_S = 30.0


def open_database(path: Path, *, timeout: float = TIMEOUT_S) -> sqlite3.Connection:
    """A connection to `path` (created when missing) in WAL mode, usable from any thread, that
    waits up to `timeout` seconds for another connection's lock wherever it meets one."""
    # The busy timeout is set by connect() itself, before any statement can meet a lock.
    connection = sqlite3.connect(path, timeout=timeout, check_same_thread=False)
    try:
        _switch_to_wal(connection, deadline=time.monotonic() + timeout)
    except BaseException:
        connection.close()
        raise
    return connection


def _switch_to_wal(connection: sqlite3.Connection, *, deadline: float) -> None:
    # Switching a file to WAL reads its header under a shared lock, then upgrades to the write
    # lock to set the WAL flag. SQLite never waits for that upgrade, whatever the busy timeout
    # (two readers each waiting to upgrade would wait for each other forever): while a second
    # process that opens a new database does the same, one of them gets "database is locked"
    # at once (2.2% of 500 simultaneous openings beside two busy loops). Failing, the statement
    # gives its shared lock back, which lets the other finish; tried again, the header says
    # WAL already and nothing is written.
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            busy = error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(random.uniform(0.005, 0.02))
