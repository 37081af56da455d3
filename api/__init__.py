"""The Archivist service and its faces, in four rooms and a front door:

- api/service/: the one `Archivist` service and what it owns (it imports no face);
- api/server/: the HTTP face (the FastAPI app, its routes, the web page, `run_server`);
- api/cli/: the command-line face (the click commands, and the client of a running server);
- api/evaluation/: search and answer evaluation, clients of the service;
- api/main.py: the `archivist` program, which joins the command line and `serve`.
tests/test_layout.py holds the import rules between them.

Importing this package prepares the process environment, once, before numpy, torch or the
tokenizers load (every entry point — the CLI, the tests, the benchmarks — imports it first):
- OPENBLAS_NUM_THREADS=1: OpenBLAS's idle worker thread spins on 2-core machines and doubled
  the query embedding time (15-19 ms instead of 7-9 ms, measured);
- TOKENIZERS_PARALLELISM=false: the tokenizer's threads would fight the conversion workers —
  except with an NVIDIA GPU, where tokenizing on one thread starved the card (raw fp16 MiniLM
  1,400 chunks/s with it, 2,570 without, H100, 16 cores);
- HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE: no model hub is ever contacted; weights ship locally;
- OMP_WAIT_POLICY=PASSIVE: llama.cpp's OpenMP threads otherwise busy-wait between generation
  steps, taking the cores from the embedder and the conversion workers beside them (with
  llama.cpp generating on both cores, a 2k-chunk search took 268 ms instead of ~25 ms); passive
  waiting left generation speed unchanged (164 vs 161-170 prompt tokens/s, SmolLM2).
A value the user already set wins.
It also hands the interpreter lock between threads every 1 ms instead of 5: native code that
lets go of it briefly and often (Qdrant's points being built, sqlite3's rows being read) waited
up to 5 ms to get it back each time while another thread ran Python — 2,048 points took 10 s
to build beside a busy thread instead of 0.04 s (0.08 s at 1 ms).
"""

import os
import sys

_GPU = os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0")
ENVIRONMENT = {
    "OPENBLAS_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "true" if _GPU else "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "OMP_WAIT_POLICY": "PASSIVE",
}
for _name, _value in ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)
sys.setswitchinterval(0.001)
