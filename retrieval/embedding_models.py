"""What Archivist needs to know of an embedding model before loading it: where it is, which
runtime reads it, its vector size, how many tokens it reads, the tokenizer that counts chunk
tokens as the model will, and the prefixes it wants before queries and documents.

Everything here comes from the model's own files, never from the caller: a sentence-transformers
folder's configs and prompts, or a GGUF file's header (nomic-bert models want `search_query: ` /
`search_document: `, as their model card says).
"""

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from retrieval.errors import ModelNotFound

Runtime = Literal["sentence-transformers", "gguf", "ollama"]

# Prefixes by GGUF architecture: a nomic-bert model is trained with these task prefixes, and
# its vectors of unprefixed queries and documents are measurably worse (nomic's model card).
_GGUF_PREFIXES = {"nomic-bert": ("search_query: ", "search_document: ")}
_CONTROL = 3  # GGUF token type of [CLS], [SEP], [PAD], [MASK], [UNK]


@dataclass(frozen=True)
class EmbeddingModel:
    """An embedding model as found on this machine."""

    name: str  # as the settings name it
    runtime: Runtime
    path: Path | None  # the sentence-transformers folder, or the .gguf file
    dimension: int
    max_tokens: int  # longest input read, special tokens included
    tokenizer: Path  # a tokenizer.json that counts tokens as the model does
    query_prefix: str = ""
    document_prefix: str = ""
    url: str | None = None  # the Ollama server that runs it

    @property
    def text_tokens(self) -> int:
        """The tokens of a document the model reads: its input less [CLS], [SEP] and the
        document prefix."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.tokenizer))
        tokenizer.no_padding()  # tokenizer.json may ask for it (MiniLM's pads to 128)
        prefix = tokenizer.encode(self.document_prefix, add_special_tokens=False)
        return self.max_tokens - 2 - len(prefix.ids)


def sentence_transformers_model(name: str, folder: Path) -> EmbeddingModel:
    """A sentence-transformers folder: its configs, and its `query` / `document` prompts."""
    tokenizer = folder / "tokenizer.json"
    if not tokenizer.is_file():
        raise ModelNotFound(f"embedding model '{name}' has no tokenizer.json at {tokenizer}")
    prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts") or {}
    return EmbeddingModel(
        name,
        "sentence-transformers",
        folder,
        _folder_dimension(name, folder),
        max_tokens(folder),
        tokenizer,
        query_prefix=prompts.get("query", ""),
        document_prefix=prompts.get("document", prompts.get("passage", "")),
    )


def gguf_model(name: str, path: Path, metadata: dict[str, Any], tokenizers: Path) -> EmbeddingModel:
    """An embedding GGUF, described from its header's key/values (`metadata`, the vocabulary
    included); its WordPiece vocabulary is written as a tokenizer.json into `tokenizers` once,
    for counting chunk tokens without llama.cpp."""
    stat = path.stat()
    stem = f"{path.stem}.{stat.st_size}.{stat.st_mtime_ns}"
    return _from_header(name, "gguf", path, metadata, tokenizers / f"{stem}.tokenizer.json")


def ollama_model(name: str, url: str, tokenizers: Path, *, timeout: float) -> EmbeddingModel:
    """An embedding model a running Ollama serves, described from its `show` (the GGUF header
    keys, vocabulary included); nothing is embedded to learn it."""
    import httpx

    try:
        # /api/show with verbose: the vocabulary too (the official client does not ask for it).
        answer = httpx.post(
            f"{url}/api/show", json={"model": name, "verbose": True}, timeout=timeout
        )
    except httpx.HTTPError as error:
        raise ModelNotFound(
            f"cannot reach Ollama at {url} to embed with '{name}' ({error}) — start `ollama "
            "serve`, set ARCHIVIST_OLLAMA_URL, or set ARCHIVIST_EMBED_BACKEND=auto"
        ) from None
    if answer.status_code != 200:
        raise ModelNotFound(
            f"Ollama at {url} has no model '{name}' ({answer.text.strip()}) — `ollama pull "
            f"{name}`, or set ARCHIVIST_EMBED_MODEL to one it has"
        )
    metadata = dict(answer.json().get("model_info") or {})
    digest = hashlib.sha256(json.dumps(metadata.get("tokenizer.ggml.tokens")).encode())
    target = tokenizers / f"ollama-{digest.hexdigest()[:16]}.tokenizer.json"
    described = _from_header(name, "ollama", None, metadata, target)
    return replace(described, url=url)


def _from_header(
    name: str, runtime: Runtime, path: Path | None, metadata: dict[str, Any], tokenizer: Path
) -> EmbeddingModel:
    architecture = str(metadata.get("general.architecture", ""))
    dimension = metadata.get(f"{architecture}.embedding_length")
    context = metadata.get(f"{architecture}.context_length")
    where = path or name
    if not dimension or not context:
        raise ModelNotFound(
            f"{where}: not an embedding model (no {architecture}.embedding_length in its "
            "header) — name an embedding model, such as nomic-embed-text-v1.5"
        )
    query, document = _GGUF_PREFIXES.get(architecture, ("", ""))
    _wordpiece_tokenizer(where, metadata, tokenizer)
    return EmbeddingModel(
        name, runtime, path, int(dimension), int(context), tokenizer, query, document
    )


def _wordpiece_tokenizer(where: Path | str, metadata: dict[str, Any], target: Path) -> None:
    """The GGUF's vocabulary as a BERT WordPiece tokenizer.json (what llama.cpp's `bert`
    tokenizer does: lower case, accents stripped, split on spaces and punctuation).

    GGUF stores word starts as `▁word` and continuations bare; WordPiece wants `word` and
    `##piece`. Control tokens ([CLS], [SEP], ...) stay as they are. Over 301 texts, counts
    equal llama.cpp's tokenizer's, less its [CLS] and [SEP] (tests/retrieval)."""
    kind = metadata.get("tokenizer.ggml.model")
    tokens = metadata.get("tokenizer.ggml.tokens")
    types = metadata.get("tokenizer.ggml.token_type")
    if kind != "bert" or not isinstance(tokens, list) or not isinstance(types, list):
        raise ModelNotFound(
            f"{where}: its tokenizer is '{kind}', and Archivist counts chunk tokens for GGUF "
            "embedding models with a WordPiece (bert) vocabulary only — use a BERT-family "
            "embedding model such as nomic-embed-text-v1.5"
        )
    if target.is_file():
        return
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    pairs = enumerate(zip(tokens, types, strict=True))
    vocabulary = {_wordpiece(token, kind): i for i, (token, kind) in pairs}
    unknown = tokens[int(metadata.get("tokenizer.ggml.unknown_token_id", 100))]
    tokenizer = Tokenizer(models.WordPiece(vocabulary, unk_token=unknown))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tokenizer.save(str(temporary))
    temporary.replace(target)


def _wordpiece(token: str, kind: int) -> str:
    if kind == _CONTROL:
        return token
    return token[1:] if token.startswith("\u2581") else f"##{token}"


def _folder_dimension(name: str, folder: Path) -> int:
    """Vector size the model produces, read from its files (no need to load it)."""
    size = None
    modules = _read_json(folder / "modules.json", default=[])
    for module in modules:
        config = folder / module.get("path", "") / "config.json"
        if module.get("path") and config.is_file():
            settings = json.loads(config.read_text())
            size = settings.get("out_features", settings.get("word_embedding_dimension", size))
    if size is None:
        size = _read_json(folder / "config.json").get("hidden_size")
    if not size:
        raise ModelNotFound(f"embedding model '{name}': cannot tell its vector size from {folder}")
    return int(size)


def max_tokens(folder: Path) -> int:
    """Longest input, in tokens, the model in `folder` reads before it silently truncates."""
    config = folder / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", 512))
    return 512


def _read_json(path: Path, default: Any = None) -> Any:
    if not path.is_file():
        return {} if default is None else default
    return json.loads(path.read_text())
