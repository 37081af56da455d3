"""Settings: every field has a working local default and can be set as ARCHIVIST_<NAME>."""

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from retrieval.dense_base import DEFAULT_COLLECTION
from retrieval.fusion import FusionMethod

# The fusion each embedding model gets unless ARCHIVIST_FUSION says otherwise, chosen by the
# worst dev set (docs/embedders.md, "Fusion per model"). blend reads cosines as they are and
# its weights were measured with MiniLM; the 768-d models' cosines sit closer together (cisi:
# the first hit's minus the tenth's 0.067 for EmbeddingGemma, 0.093 for MiniLM), so blend let
# BM25 outvote their stronger dense legs (EmbeddingGemma's hybrid 0.430 on cisi, its dense leg
# 0.468). Min-max scores with equal weights read no scale: with nomic-embed-text-v1.5 and with
# EmbeddingGemma they beat blend on all three BEIR sets; with MiniLM they lose amazon (0.457
# against 0.481) and the filings' evidence pages (0.433 against 0.483).
BLEND_MODEL = "all-MiniLM-L6-v2"
BLEND_WEIGHTS = (0.45, 0.55)


def is_blend_model(embed_model: str) -> bool:
    """MiniLM-L6 however it is named: the packaged model, a folder or GGUF file of it
    (".../all-MiniLM-L6-v2-f16.gguf"), or Ollama's all-minilm, whose default tag is L6-v2 (its
    L12 tags are another model, not measured)."""
    name = embed_model.replace("\\", "/").rsplit("/", 1)[-1].lower()
    base, _, tag = name.partition(":")
    return "all-minilm-l6" in name or (
        base == "all-minilm" and tag in ("", "latest", "l6-v2", "22m")
    )


class Settings(BaseSettings):
    """Archivist's configuration, read from ARCHIVIST_* environment variables."""

    # populate_by_name: Settings(model_dir=...) as well as the variables model_dir's alias names.
    model_config = SettingsConfigDict(
        env_prefix="ARCHIVIST_", extra="ignore", populate_by_name=True
    )

    data: Path = Field(
        Path("data"),
        description="Data folder: inbox/ holds documents; state/ holds the database and indexes.",
    )

    @field_validator("data", mode="before")
    @classmethod
    def _data_named(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a folder (it is empty)")
        return value

    embed_model: str = Field(
        BLEND_MODEL,
        description=(
            "Embedding model: all-MiniLM-L6-v2 (ships with the install), nomic-embed-text-v1.5 "
            "(`make models`), embeddinggemma-300m (`make embeddinggemma`), a "
            "sentence-transformers folder, or a GGUF embedding model's file."
        ),
    )
    chunk_tokens: int = Field(
        200, gt=0, description="Target chunk size, in embedding-model tokens."
    )
    chunk_max_tokens: int = Field(
        240, gt=0, description="Hard cap on chunk size; must stay below the model's input limit."
    )
    chunk_overlap_tokens: int = Field(
        32, ge=0, description="Tokens repeated between neighbour chunks."
    )
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="Conversion processes (default: one per core).",
    )
    convert_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Time limit for converting one file (a PDF or picture: from its last page "
        "done; an hour at most).",
    )
    convert_memory_mb: int = Field(
        default_factory=lambda fields: conversion_memory_mb(fields["workers"]),
        ge=256,
        description=(
            "Memory limit for all conversions together (MB; default: 1024 per worker, at least "
            "2048, at most half the machine's memory)."
        ),
    )
    max_file_mb: int = Field(512, gt=0, description="Files larger than this are not converted.")
    max_expand_mb: int = Field(
        1024, gt=0, description="Office/EPUB archives that unpack larger than this are refused."
    )
    ocr: Literal["auto", "off"] = Field(
        "auto",
        description="Read scanned PDF pages and pictures of pages by OCR when Tesseract is "
        "installed (auto), or never (off).",
    )
    ocr_languages: str = Field(
        "eng",
        pattern=r"^[A-Za-z_]+([+,][A-Za-z_]+)*$",
        description="Tesseract's languages, e.g. eng or eng+deu (each needs its Debian package "
        "tesseract-ocr-LANG).",
    )

    qdrant_url: str | None = Field(
        None,
        description="A Qdrant server or cluster (http://host:6333); unset: the embedded engine.",
    )
    qdrant_collection: str = Field(
        DEFAULT_COLLECTION,
        pattern=r"^[A-Za-z0-9_-]{1,255}$",
        description="The collection on ARCHIVIST_QDRANT_URL (one per data folder: another data "
        "folder's SQLite would find it out of line and rebuild it).",
    )
    qdrant_shards: int | None = Field(
        None,
        gt=0,
        description="Shards of a collection Archivist creates on ARCHIVIST_QDRANT_URL "
        "(default: the server's, one per node of a cluster).",
    )
    qdrant_replicas: int | None = Field(
        None,
        gt=0,
        description="Copies of each shard on a cluster (default 1: a node that is "
        "down takes its shards with it).",
    )
    keyword: Literal["tantivy", "qdrant"] = Field(
        "tantivy",
        description="Where the BM25 leg lives: tantivy (a folder beside SQLite) or qdrant (sparse "
        "vectors in the collection on ARCHIVIST_QDRANT_URL, beside the dense ones).",
    )
    replica: bool = Field(
        False,
        description="Answer from the collection another Archivist writes on ARCHIVIST_QDRANT_URL "
        "(with ARCHIVIST_KEYWORD=qdrant): no documents of its own, every change refused.",
    )
    embed_backend: Literal["auto", "torch", "onnx", "onnx-int8", "llamacpp", "ollama"] = Field(
        "auto",
        description=(
            "Embedding runtime: onnx-int8 (ONNX Runtime, int8 weights), onnx (fp32) or torch; "
            "llamacpp for GGUF models; ollama: ARCHIVIST_EMBED_MODEL as the Ollama on "
            "ARCHIVIST_OLLAMA_URL serves it (e.g. nomic-embed-text); auto: llamacpp for a GGUF "
            "model, else torch in fp16 on a GPU and onnx-int8 on CPUs (the measured winner; "
            "torch for embeddinggemma-300m, which does not export to ONNX)."
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where the embedding model runs; auto: a CUDA GPU when present."
    )
    embed_compile: Literal["auto", "on", "off"] = Field(
        "auto",
        description=(
            "Compile the torch runtime's question path ahead of time (AOTInductor, once per "
            "machine into the models folder: about a minute in a background process; questions "
            "are embedded as before meanwhile): auto: in the processes that stay up (serve, "
            "watch) on a CPU; on: in every process that embeds with torch; off: never. "
            "EmbeddingGemma's questions then take less than half the time on a CPU."
        ),
    )
    embed_batch_size: int | None = Field(
        None, gt=0, description="Chunks per embedding batch (default: 16 on CPUs, 512 on a GPU)."
    )
    search_candidates: int = Field(50, gt=0, description="Candidates each search leg contributes.")
    fusion: Literal["blend", "score", "rrf"] | None = Field(
        None,
        description=(
            "blend: weighted sum of BM25 relative to the query's best match and the cosine "
            "similarity, each leg scoring every candidate, a leg whose first hits scatter over "
            "many documents weighing less; score: min-max normalized leg scores; rrf: "
            "reciprocal rank fusion with ARCHIVIST_RRF_K. Default: the one measured for the "
            "embedding model — blend for all-MiniLM-L6-v2, score for every other model."
        ),
    )
    rrf_k: int = Field(60, ge=0, description="Reciprocal rank fusion constant.")
    rerank_model: str | None = Field(
        None, description="Cross-encoder (local folder or cached name) to rerank results; off."
    )
    # A reranker can only bring up what it reads: on financebench-dev, a perfect one over
    # hybrid's first 30 / 50 / 100 hits gives page recall@10 0.583 / 0.750 / 0.833
    # (bench/page_headroom.py); the evidence pages are often hybrid's 20th-50th hit. The cost,
    # a MiniLM-L6-sized cross-encoder on two CPU cores: a search takes 1.8 s with 30, 2.4-2.7 s
    # with 50 (p50 of financebench's 30 questions, two runs each).
    rerank_candidates: int = Field(50, gt=0, description="Fused candidates the reranker re-scores.")
    # Chosen by the worst of four dev sets (README, "Search quality"): with blend, BM25 weights
    # 0.40 / 0.45 / 0.50 gave nDCG@10 0.452 / 0.448 / 0.436 on cisi, 0.478 / 0.480 / 0.481 on
    # amazon, 0.903 / 0.904 / 0.901 on squad-dev, page recall@10 0.467 on financebench-dev.
    bm25_weight: float | None = Field(
        None, ge=0, description="Weight of the BM25 leg in fusion (default: 0.45 in blend, else 1)."
    )
    dense_weight: float | None = Field(
        None,
        ge=0,
        description="Weight of the dense leg in fusion (default: 0.55 in blend, else 1).",
    )
    # Depths 3-8 gave the same page recall@10 on financebench-dev (0.467, against 0.433 at
    # 10-15) and BEIR nDCG@10 0 to +0.005 over depth 10; 5 is inside that plateau.
    focus_depth: int = Field(
        5,
        gt=0,
        description=(
            "blend and score fusion: each leg's first hits whose documents are counted; a "
            "leg's weight is divided by that count (a document the other leg's first hits "
            "miss counts once per hit)."
        ),
    )
    # financebench-dev: the right filing first for 26 of 30 questions at 0.1 to 0.5 (25 at 0
    # and at 0.75 to 1.0), page recall@10 unchanged; the BEIR dev sets unchanged (each
    # passage is one place).
    document_weight: float = Field(
        0.25,
        ge=0,
        description=(
            "hybrid: how much each of the first 10 hits' scores grows with its document's "
            "evidence (the mean of its two best-matching pages, or sections) relative to the "
            "best document's; 0 turns it off."
        ),
    )
    search_k: int = Field(10, gt=0, description="Results `archivist search` shows.")

    llm: Literal["auto", "ollama", "openai", "llamacpp", "none"] = Field(
        "auto",
        description=(
            "Who answers: auto (Ollama if it is running and has the model, else the embedded "
            "model, else retrieval-only), ollama, openai (an OpenAI-compatible server), "
            "llamacpp (embedded GGUF), none (passages only)."
        ),
    )
    ollama_url: str = Field("http://127.0.0.1:11434", description="The Ollama server.")
    ollama_model: str = Field("qwen2.5:7b-instruct", description="The Ollama model to ask.")
    ollama_keep_alive: str = Field("10m", description="How long Ollama keeps the model loaded.")
    openai_url: str | None = Field(
        None,
        description="An OpenAI-compatible server (llama-server, vLLM, LM Studio): its /v1 URL.",
    )
    openai_model: str = Field(
        "local", description="Model name sent to the OpenAI-compatible server."
    )
    openai_api_key: str | None = Field(
        None, description="API key for that server, if it needs one."
    )
    gguf: str = Field(
        "qwen2.5-coder-0.5b",
        description=(
            "Embedded model: a packaged one (qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, "
            "smollm2-135m) or the path of any chat GGUF file."
        ),
    )
    model_dir: Path = Field(
        default_factory=lambda: machine_models_dir(),
        validation_alias=AliasChoices("ARCHIVIST_MODELS", "ARCHIVIST_MODEL_DIR"),
        description=(
            "ARCHIVIST_MODELS: the models folder every data folder of this machine shares: the "
            "embedding model's ONNX exports and the joined GGUF models, made once and checked "
            "by SHA-256 (default: $XDG_CACHE_HOME/archivist/models, else "
            "~/.cache/archivist/models; ARCHIVIST_MODEL_DIR is its old name)."
        ),
    )

    @field_validator("model_dir", mode="before")
    @classmethod
    def _models_named(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return machine_models_dir()  # set but empty: the default, not the current folder
        return value

    llm_context_tokens: int = Field(
        4096,
        description=(
            "Context window asked of the model (capped at what it was trained for); for "
            "OpenAI-compatible servers, set it to the server's window."
        ),
    )
    llm_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="CPU threads of the embedded model.",
    )
    llm_parallel: int = Field(1, gt=0, description="Answers generated at once (parallel contexts).")
    llm_queue: int = Field(
        16, description="Questions that may wait for the model; more are refused."
    )
    llm_timeout_s: float = Field(120.0, gt=0, description="Time limit for the model to answer.")
    answer_tokens: int = Field(384, gt=0, description="Longest answer, in tokens.")
    temperature: float = Field(0.1, description="Sampling temperature (0: always the likeliest).")
    top_p: float = Field(0.9, description="Nucleus sampling.")
    top_k_sampling: int = Field(40, description="Sample among the k likeliest tokens.")
    seed: int | None = Field(None, description="Sampling seed, for repeatable answers.")
    ask_sources: int = Field(3, gt=0, description="Passages retrieved for each question.")
    # 5: squad-dev prompts of ~300 tokens instead of ~420 (the 0.5B model reads ~110 tokens/s on
    # two cores): first token 3.9 s against 5.9 s side by side, the same answer recall as whole
    # passages within noise (0.622 / 0.631 on 111 squad-dev questions); 3 and 4 sentences lost
    # the handbook's answers (docs/answers.md).
    answer_evidence: int = Field(
        5,
        ge=0,
        description=(
            "The model reads this many sentences of the passages, those that answer the "
            "question best, with their neighbours (0: the whole passages); a shorter prompt "
            "answers sooner."
        ),
    )

    host: str = Field("127.0.0.1", description="Address `archivist serve` listens on.")
    port: int = Field(8000, description="Port `archivist serve` listens on.")
    api_key: str | None = Field(
        None,
        description=(
            "Bearer token the HTTP API requires; needed to serve on any address but loopback."
        ),
    )
    # Against DNS rebinding: a page of another site whose name is made to point at this machine
    # reaches the server as its own origin, with its name in the Host header. The server
    # always answers to localhost, IP addresses and ARCHIVIST_HOST; with an API key set, to
    # any name (such a page never holds the key).
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Other names the server is reached by, comma-separated (archivist.lan,nas.local; "
            "* for any); requests to any other name are refused. Always answered: localhost, "
            "IP addresses and ARCHIVIST_HOST; any name when ARCHIVIST_API_KEY is set and "
            "this is not."
        ),
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_names(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list):
            return value
        names = [str(name).strip().lower() for name in value]
        if any("/" in name for name in names):
            raise ValueError("must list host names (nas.local), not URLs")
        # A port is dropped: the name is what a rebinding page cannot fake.
        names = [name.partition(":")[0] if name.count(":") == 1 else name for name in names]
        return [name.rstrip(".") for name in names if name]

    watch_settle_s: float = Field(
        1.0,
        ge=0,
        description=(
            "A changed file in the watched folder is read once its size and modification time "
            "have held still this long (a copy in progress is never read half-written)."
        ),
    )

    @property
    def inbox(self) -> Path:
        """The watched folder of documents."""
        return self.data / "inbox"

    @property
    def state_dir(self) -> Path:
        """Where the database and indexes live (git-ignored)."""
        return self.data / "state"

    @property
    def database(self) -> Path:
        """The SQLite file: the source of truth."""
        return self.state_dir / "archivist.db"

    @property
    def sessions_database(self) -> Path:
        """The SQLite file of conversations (kept apart from the documents)."""
        return self.state_dir / "sessions.db"

    @property
    def fusion_method(self) -> FusionMethod:
        """How hybrid fuses its legs: as set, else as measured for the embedding model."""
        if self.fusion is not None:
            return self.fusion
        return "blend" if is_blend_model(self.embed_model) else "score"

    @property
    def fusion_weights(self) -> dict[str, float]:
        """Each leg's weight in fusion: as set, else blend's measured ones or equal weights."""
        bm25, dense = BLEND_WEIGHTS if self.fusion_method == "blend" else (1.0, 1.0)
        return {
            "bm25": bm25 if self.bm25_weight is None else self.bm25_weight,
            "dense": dense if self.dense_weight is None else self.dense_weight,
        }

    def embed_batch_for(self, device: str) -> int:
        """Chunks per embedding batch: set, or large enough to keep a GPU busy (the fp16 MiniLM
        peaked at batch 512 on an H200), and small on CPUs, where torch runs larger batches
        slower (two cores, 200-token chunks of the shared corpus through the embedder, batches
        of 16 / 64: EmbeddingGemma bf16 7.2 / 2.0 chunks/s, fp32 1.6 / 1.0; MiniLM bf16 75 /
        33, fp32 15.7 / 14.2). ONNX Runtime and llama.cpp read one text per run anyway."""
        return self.embed_batch_size or (512 if device == "cuda" else 16)

    @property
    def models(self) -> Path:
        """The machine's models folder: ONNX exports and joined GGUFs, shared by data folders."""
        return self.model_dir

    @property
    def data_models(self) -> Path:
        """Where data folders kept their own models before the machine's folder (still read)."""
        return self.data / "models"


def machine_models_dir() -> Path:
    """$XDG_CACHE_HOME/archivist/models, else ~/.cache/archivist/models."""
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(cache) if Path(cache).is_absolute() else Path.home() / ".cache") / (
        "archivist/models"
    )


def conversion_memory_mb(workers: int) -> int:
    """1 GB for each conversion beside the others (typeset PDFs ran out at a 256 MB share: 16
    workers sharing 2 GB converted 56 pages/s, 36 times slower than at 1 GB each), at least
    2 GB in all and at most half the machine's memory."""
    machine_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    return max(2048, min(1024 * workers, machine_mb // 2))


def load_settings() -> Settings:
    """Settings from the environment; a bad value is a ConfigError naming the variable."""
    from api.service.errors import ConfigError  # (api.errors imports the packages below settings)

    try:
        return Settings()
    except ValidationError as invalid:
        problems = []
        for problem in invalid.errors():
            if problem["type"] == "default_factory_not_called":
                # A default made from other fields (convert_memory_mb's, from workers) is not
                # made once any field is bad: an echo of that field's error, not a problem.
                continue
            name = "_".join(str(part) for part in problem["loc"]).upper()
            name = name if name.startswith("ARCHIVIST_") else f"ARCHIVIST_{name}"  # an alias
            message = str(problem["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}={os.environ.get(name, '')!r}: {message}")
        raise ConfigError(
            "; ".join(problems)
            + " — fix or unset it (see `api/service/settings.py` for every setting)"
        ) from None
