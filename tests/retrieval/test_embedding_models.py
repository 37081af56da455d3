"""Embedding models described from their own files, and embedded through the real runtimes:
the packaged nomic-embed-text-v1.5 GGUF on llama.cpp and through an Ollama-protocol server, and
a sentence-transformers folder's query/document prompts. Queries and documents get the model's
own prefixes."""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from api.service import exports_to_onnx, runtime_of
from generation.gguf import read_metadata
from retrieval.embedder import DEFAULT_MODEL, Embedder, resolve_model_path
from retrieval.embedding_models import (
    EmbeddingModel,
    gguf_model,
    ollama_model,
    sentence_transformers_model,
)
from retrieval.encoders import resolve_backend
from retrieval.errors import EmbedderUnavailable, ModelNotFound

TEXTS = [
    "The Fresnel lens is cleaned every Tuesday morning with distilled water and a linen cloth.",
    "Water the tomatoes every morning before eight, and the beans at dusk.",
    "Net revenue for fiscal 2022 was $4.2 billion, up 8% from the prior year.",
    "Café naïve résumé — “quotes” 10,000.50 e-mail x@y.com ünïcödé 日本語 🙂 [CLS] ##ing",
]


@pytest.fixture(scope="module")
def nomic(nomic_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> EmbeddingModel:
    header = read_metadata(nomic_gguf, max_array=1 << 20)
    folder = tmp_path_factory.mktemp("tokenizers")
    return gguf_model("nomic-embed-text-v1.5", nomic_gguf, header, folder)


@pytest.fixture(scope="module")
def nomic_embedder(nomic: EmbeddingModel) -> Iterator[Embedder]:
    embedder = Embedder(nomic, backend="llamacpp", batch_size=8, onnx_cache=Path("/nonexistent"))
    yield embedder
    embedder.close()


def test_nomic_is_described_from_its_header(nomic: EmbeddingModel) -> None:
    assert (nomic.runtime, nomic.dimension, nomic.max_tokens) == ("gguf", 768, 2048)
    assert (nomic.query_prefix, nomic.document_prefix) == ("search_query: ", "search_document: ")
    assert nomic.text_tokens == 2048 - 2 - 4  # [CLS], [SEP] and "search _ document :"
    assert runtime_of("nomic-embed-text-v1.5") == runtime_of("/x/model.GGUF") == "gguf"
    assert runtime_of(DEFAULT_MODEL) == "sentence-transformers"


def test_the_gguf_vocabulary_counts_tokens_as_llama_cpp_does(
    nomic: EmbeddingModel, nomic_gguf: Path
) -> None:
    from llama_cpp import Llama

    vocabulary = Llama(model_path=str(nomic_gguf), vocab_only=True, verbose=False)
    counter = Tokenizer.from_file(str(nomic.tokenizer))
    long_text = " ".join(TEXTS * 20)
    for text in [*TEXTS, long_text]:
        ids = vocabulary.tokenize(text.encode(), add_bos=True, special=False)
        assert ids[1:-1] == counter.encode(text).ids, text  # less [CLS] and [SEP]


def test_nomic_embeds_queries_and_documents_behind_their_own_prefixes(
    nomic_embedder: Embedder, nomic_gguf: Path
) -> None:
    from llama_cpp import Llama

    documents = nomic_embedder.encode(TEXTS)
    assert documents.shape == (len(TEXTS), 768) and documents.dtype == np.float32
    assert np.allclose(np.linalg.norm(documents, axis=1), 1.0, atol=1e-5)
    query = nomic_embedder.encode_query(TEXTS[0])
    raw = Llama(model_path=str(nomic_gguf), embedding=True, n_ctx=512, verbose=False)
    as_query, as_document = (
        np.asarray(raw.embed(prefix + TEXTS[0], normalize=True))
        for prefix in ("search_query: ", "search_document: ")
    )
    assert float(query @ as_query) > 0.9999 and float(documents[0] @ as_document) > 0.9999
    assert float(query @ documents[0]) < 0.99  # the same text, told apart by its prefix
    pair = nomic_embedder.encode_with_question(TEXTS[0], TEXTS[:1])
    assert float(pair[0] @ query) > 0.9999 and float(pair[1] @ documents[0]) > 0.9999


def test_nomic_finds_the_passage_that_answers(nomic_embedder: Embedder) -> None:
    documents = nomic_embedder.encode(TEXTS)
    for question, answer in [
        ("How often is the lighthouse lens cleaned?", 0),
        ("when should I water the vegetables", 1),
        ("What was the company's revenue growth in 2022?", 2),
    ]:
        scores = documents @ nomic_embedder.encode_query(question)
        assert int(np.argmax(scores)) == answer, (question, scores)


def test_a_sentence_transformers_folder_brings_its_prompts(tmp_path: Path) -> None:
    folder = tmp_path / "prompted"
    shutil.copytree(resolve_model_path(DEFAULT_MODEL), folder)
    prompts = {"query": "task: search | query: ", "document": "title: none | text: "}
    config = folder / "config_sentence_transformers.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "prompts": prompts}))
    model = sentence_transformers_model("prompted", folder)
    assert (model.query_prefix, model.document_prefix) == (prompts["query"], prompts["document"])
    plain = sentence_transformers_model(DEFAULT_MODEL, resolve_model_path(DEFAULT_MODEL))
    assert (plain.query_prefix, plain.document_prefix, plain.dimension) == ("", "", 384)
    embedder = Embedder(model, backend="torch", batch_size=4, onnx_cache=tmp_path / "onnx")
    try:
        query, (document,) = embedder.encode_query(TEXTS[1]), embedder.encode(TEXTS[1:2])
        reference = Embedder(plain, backend="torch", batch_size=4, onnx_cache=tmp_path / "onnx")
        try:
            expected = reference.encode([prompts["query"] + TEXTS[1]])[0]
            assert float(query @ expected) > 0.9999
            assert float(query @ document) < 0.99
        finally:
            reference.close()
    finally:
        embedder.close()


def test_a_gguf_without_a_wordpiece_vocabulary_is_refused(
    smollm2_gguf: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFound, match="its tokenizer is 'gpt2'"):
        gguf_model(
            "smollm2", smollm2_gguf, read_metadata(smollm2_gguf, max_array=1 << 20), tmp_path
        )


def test_gguf_models_run_on_llama_cpp_only() -> None:
    assert resolve_backend("auto", "cpu", "gguf") == "llamacpp"
    assert resolve_backend("llamacpp", "cpu", "gguf") == "llamacpp"
    with pytest.raises(EmbedderUnavailable, match="a GGUF embedding model runs on llama.cpp"):
        resolve_backend("onnx-int8", "cpu", "gguf")
    with pytest.raises(EmbedderUnavailable, match="runs GGUF embedding models"):
        resolve_backend("llamacpp", "cpu", "sentence-transformers")


def test_auto_runs_a_packaged_folder_that_does_not_export_to_onnx_on_torch() -> None:
    """EmbeddingGemma's ONNX export fails: `auto` must not send it there on CPUs."""
    assert not exports_to_onnx("embeddinggemma-300m") and exports_to_onnx(DEFAULT_MODEL)
    assert resolve_backend("auto", "cpu", exports=exports_to_onnx(DEFAULT_MODEL)) == "onnx-int8"
    assert resolve_backend("auto", "cpu", exports=exports_to_onnx("embeddinggemma-300m")) == "torch"
    assert runtime_of("embeddinggemma-300m") == "sentence-transformers"


# --- through Ollama -----------------------------------------------------------------------------


def test_an_ollama_model_is_described_by_the_server(ollama_embed_url: str, tmp_path: Path) -> None:
    model = ollama_model("nomic-embed-text", ollama_embed_url, tmp_path, timeout=30)
    assert (model.runtime, model.path, model.url) == ("ollama", None, ollama_embed_url)
    assert (model.dimension, model.max_tokens, model.query_prefix) == (768, 2048, "search_query: ")
    counter = Tokenizer.from_file(str(model.tokenizer))
    assert counter.encode("The Fresnel lens is cleaned").tokens == [
        "the", "fr", "##es", "##nel", "lens", "is", "cleaned"
    ]  # fmt: skip


def test_ollama_embeds_as_llama_cpp_does_behind_the_same_prefixes(
    ollama_embed_url: str, nomic_embedder: Embedder, tmp_path: Path
) -> None:
    model = ollama_model("nomic-embed-text", ollama_embed_url, tmp_path, timeout=30)
    embedder = Embedder(model, backend="ollama", batch_size=2, onnx_cache=tmp_path)
    try:
        documents, local = embedder.encode(TEXTS[:3]), nomic_embedder.encode(TEXTS[:3])
        assert documents.shape == (3, 768)
        assert (documents * local).sum(axis=1).min() > 0.9999
        query = embedder.encode_query(TEXTS[0])
        assert float(query @ nomic_embedder.encode_query(TEXTS[0])) > 0.9999
        assert float(query @ documents[0]) < 0.99
    finally:
        embedder.close()


def test_an_ollama_without_the_model_or_unreachable_says_what_to_do(
    ollama_embed_url: str, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFound, match="has no model 'mxbai-embed-large'.*ollama pull"):
        ollama_model("mxbai-embed-large", ollama_embed_url, tmp_path, timeout=30)
    with pytest.raises(ModelNotFound, match="cannot reach Ollama at http://127.0.0.1:9"):
        ollama_model("nomic-embed-text", "http://127.0.0.1:9", tmp_path, timeout=5)
    assert resolve_backend("ollama", "cpu", runtime_of("nomic-embed-text")) == "ollama"
