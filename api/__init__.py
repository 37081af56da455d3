"""Settings, the Archivist service, the command line and the HTTP API.

Importing this package prepares the process environment, once, before numpy, torch or the
tokenizers load (every entry point — the CLI, the tests, the benchmarks — imports it first):
- OPENBLAS_NUM_THREADS=1: OpenBLAS's idle worker thread spins on 2-core machines and doubled
  the query embedding time (15-19 ms instead of 7-9 ms, measured);
- TOKENIZERS_PARALLELISM=false: the tokenizer's threads would fight the conversion workers;
- HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE: no model hub is ever contacted; weights ship locally;
- OMP_WAIT_POLICY=PASSIVE: llama.cpp's OpenMP threads otherwise busy-wait between generation
  steps, taking the cores from the embedder and the conversion workers beside them (with
  llama.cpp generating on both cores, a 2k-chunk search took 268 ms instead of ~25 ms); passive
  waiting left generation speed unchanged (164 vs 161-170 prompt tokens/s, SmolLM2).
A value the user already set wins.
"""

import os

ENVIRONMENT = {
    "OPENBLAS_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "OMP_WAIT_POLICY": "PASSIVE",
}
for _name, _value in ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)
