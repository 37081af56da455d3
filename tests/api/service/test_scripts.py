"""Archivist used from a Python script, as people script batch work with it."""

import subprocess
import sys
from pathlib import Path

SCRIPT = """
from pathlib import Path
from api.service import Archivist
from api.service import Settings

{guard}with Archivist(Settings(data=Path({data!r}))) as archivist:
{indent}print(archivist.ingest([Path({folder!r})]).report.summary()["ingested"], "ingested")
"""


def _script(tmp_path: Path, *, guarded: bool) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "notes"
    folder.mkdir(exist_ok=True)
    (folder / "lens.md").write_text("# Lens\n\nThe lens is cleaned every fourteen days.\n")
    guard, indent = ('if __name__ == "__main__":\n    ', "        ") if guarded else ("", "    ")
    script = tmp_path / f"ingest_{guarded}.py"
    script.write_text(
        SCRIPT.format(guard=guard, indent=indent, data=str(tmp_path / "data"), folder=str(folder))
    )
    # The conversion time-out (120 s) is what a script without the guard used to wait for.
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=90, cwd=tmp_path
    )


def test_a_script_without_the_main_guard_is_told_what_to_do(tmp_path: Path) -> None:
    done = _script(tmp_path, guarded=False)
    assert done.returncode != 0
    # The worker stops at the script's `Archivist(...)`, before it opens or loads anything.
    assert "ConfigError: Archivist was started by a conversion worker" in done.stderr
    assert "WorkersFailed: a conversion worker exited as it started" in done.stderr
    assert 'if __name__ == "__main__":' in done.stderr.splitlines()[-1]


def test_a_script_with_the_guard_ingests(tmp_path: Path) -> None:
    done = _script(tmp_path, guarded=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1 ingested"
