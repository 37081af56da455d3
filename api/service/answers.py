"""Cited answers: retrieve, pack the passages into the model's window, stream, parse citations."""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from api.service.errors import BadRequest
from api.service.indexes import Indexes
from api.service.llm import LLM
from api.service.search import Filters, Mode, SearchHit, SearchHits
from api.service.sessions import SessionStore, check_session_id, new_session_id
from api.service.settings import Settings
from generation.answer_check import Guard, is_refusal, likely_source
from generation.backend import Backend, Sampling
from generation.citations import parse_citations
from generation.errors import PromptTooLong
from generation.extractive import Embed, Quote, best_sentences, evidence, quoted_answer
from generation.injection import WITHHELD, withhold_instructions
from generation.prompt import (
    Prompt,
    Source,
    Turn,
    clean_rewrite,
    combined_query,
    pack_prompt,
    source_label,
    standalone_query_messages,
)
from ingest.store import ChunkStore
from retrieval.embedder import Embedder

_REWRITE_TOKENS = 48
NO_MATCH = "Nothing in the documents matches this question."
NO_DOCUMENTS = (
    "No documents have been added yet: put files in the inbox folder ({inbox}) or run "
    "`archivist ingest PATH`, then ask again."
)
ONLY_WITHHELD = (
    "The passages found for this question hold nothing but text addressed to the assistant, "
    "which is withheld from it (see docs/injection.md): nothing in them answers it."
)


class Service(Protocol):
    """What answering takes from the Archivist service (which has it all)."""

    settings: Settings
    llm: LLM

    @property
    def sessions(self) -> SessionStore: ...

    @property
    def indexes(self) -> Indexes: ...

    @property
    def store(self) -> ChunkStore: ...

    def search(
        self,
        query: str,
        *,
        k: int,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
        one_per_page: bool = True,
    ) -> SearchHits: ...


@dataclass(frozen=True)
class AskOptions:
    """One question's options; None takes the value from Settings."""

    session_id: str | None = None
    start_session: bool = False  # with no session_id: open a new session for follow-ups
    sources: int | None = None  # passages retrieved
    mode: Mode = "hybrid"
    filters: Filters | None = None
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k_sampling: int | None = None
    seed: int | None = None
    max_tokens: int | None = None
    history: tuple[Turn, ...] = ()  # earlier turns given by the caller (used without a session)
    extractive: bool = False  # quote the best sentences instead of asking the model


@dataclass(frozen=True)
class Citation:
    """A source the answer cites: its number in the prompt, and where it comes from."""

    n: int
    path: str
    page: int | None
    section: str | None
    chunk_id: str
    snippet: str

    def place(self, *, name_only: bool = False) -> str:
        """Where it points, for people: "file, page N — section"."""
        where = Path(self.path).name if name_only else self.path
        if self.page is not None:
            where += f", page {self.page}"
        return where + (f" — {self.section}" if self.section else "")


@dataclass(frozen=True)
class Answer:
    """An answer with its citations, who produced it, and how long each part took."""

    answer: str
    citations: list[Citation]
    backend: str
    model: str | None
    session_id: str | None
    query: str
    retrieval_ms: float
    first_token_ms: float | None
    generation_ms: float
    tokens: int
    tokens_per_s: float | None
    unknown_citations: list[int] = field(default_factory=list)
    extractive: bool = False  # quoted from the passages, not written by the model
    rejected: list[str] = field(default_factory=list)  # what was wrong with the model's tries
    note: str | None = None  # why the answer is quoted, when it is
    missing_legs: dict[str, str] = field(default_factory=dict)  # see SearchHits
    sources: list[Source] = field(default_factory=list)  # everything packed into the prompt

    def to_json(self) -> dict[str, Any]:
        """The answer as the JSON object `ask --json`, `batch` and the HTTP API print."""
        data = asdict(self)
        del data["sources"]
        for key in ("retrieval_ms", "first_token_ms", "generation_ms", "tokens_per_s"):
            if data[key] is not None:
                data[key] = round(data[key], 1)
        return data


def answer_question(
    service: Service,
    question: str,
    options: AskOptions,
    *,
    on_token: Callable[[str], None] | None = None,
) -> Answer:
    """Retrieve, generate and cite; the one question-answering path of every interface."""
    question = " ".join(question.split())
    if not question:
        raise BadRequest("the question is empty — ask something about your documents")
    started = time.perf_counter()
    session_id = _session(options)
    history = service.sessions.history(session_id) if session_id else list(options.history)
    backend = None if options.extractive else service.llm.backend(options.model)
    query = _standalone_query(service, backend, question, history)
    searched = time.perf_counter()
    hits = service.search(
        query,
        k=options.sources or service.settings.ask_sources,
        mode=options.mode,
        filters=options.filters,
        # Passages, not places: with a page's best chunk only, the handbook's lens question
        # read a cycling FAQ in place of page 2's second chunk, and two of the four handbook
        # questions were answered by a quote instead of one (tests/api/server).
        one_per_page=False,
    )
    retrieval_ms = _ms(searched, time.perf_counter())
    # first_token_ms counts from the question: query rewrite and retrieval included.
    if backend is None:
        why = None if options.extractive else service.llm.why_none(options.model)
        note = f"No language model is available ({why})." if why else None
        answer = _extractive(service, question, hits, on_token, started, note=note)
        answer = replace(answer, query=query, retrieval_ms=retrieval_ms)
    elif not hits:
        answer = Answer(_nothing_found(service), [], backend.name, backend.model, None, query,
                        retrieval_ms, None, 0.0, 0, None)  # fmt: skip
    else:
        answer = _checked(service, backend, question, history, hits, options, on_token, started)
        answer = replace(answer, query=query, retrieval_ms=retrieval_ms)
    if session_id:
        service.sessions.append(session_id, question, answer.answer)
    return replace(answer, session_id=session_id, missing_legs=hits.missing_legs)


def _ms(start: float, end: float) -> float:
    return (end - start) * 1000


def _nothing_found(service: Service) -> str:
    """What to answer when no passage matches: that nothing was ever added, where nothing was."""
    if service.store.chunk_count() == 0:
        return NO_DOCUMENTS.format(inbox=service.settings.inbox)
    return NO_MATCH


def _session(options: AskOptions) -> str | None:
    if options.session_id is not None:  # an empty id is refused, not taken for none
        return check_session_id(options.session_id)
    return new_session_id() if options.start_session else None


def _standalone_query(
    service: Service, backend: Backend | None, question: str, history: list[Turn]
) -> str:
    """A follow-up turned into a query that stands on its own (by the model when there is one)."""
    if not history:
        return question
    if backend is None:
        return combined_query(question, history)
    sampling = Sampling(temperature=0.0, max_tokens=_REWRITE_TOKENS, seed=0)
    messages = standalone_query_messages(question, history)
    channel = service.llm.queue.submit(lambda emit: "".join(backend.stream(messages, sampling)))
    return clean_rewrite(channel.result(), question, history)


def _checked(
    service: Service,
    backend: Backend,
    question: str,
    history: list[Turn],
    hits: list[SearchHit],
    options: AskOptions,
    on_token: Callable[[str], None] | None,
    started: float,
) -> Answer:
    """The model's answer, checked before it is shown (answer_check.Guard); a rejected answer is
    replaced by the passages' best sentences, quoted. The quote is chosen before the model
    writes: an answer none of whose new words it holds, read from no better sentence, is
    rejected (answer_check.disagrees).

    A rejected answer used to be asked once more (temperature 0, repeat penalty 1.3). Of the
    0.5B model's answers to 60 squad-dev and 200 amazon questions, 20 second tries passed the
    checks: 6 held the gold answer and 6 cited a passage holding it; the quotes that now stand
    in their place, 10 and 13. A second try also made the reader wait one to three seconds more.
    """
    sampling = _sampling(service, options)
    # Orders to the model are withheld before evidence is chosen, so that no evidence sentence
    # is one the prompt then withholds (every one could be, leaving the model nothing).
    passages = [_withheld(passage_source(hit)) for hit in hits]
    if all(passage.text == WITHHELD for passage in passages):
        return Answer(ONLY_WITHHELD, [], backend.name, backend.model, None, "", 0.0, None, 0.0, 0,
                      None)  # fmt: skip
    best = service.settings.answer_evidence
    embed = _question_first(service.indexes.embedder)  # the evidence and the quote share it
    sources = _focused(question, passages, best, embed) if best else passages
    quotes = _quotes(question, hits, embed)
    answer = _generate(service, backend, question, history, hits, sources, sampling, on_token,
                       started, quote=quoted_answer(quotes))  # fmt: skip
    if answer.answer:  # checked whole, or cut where a loop or a paste began
        return answer
    note = f"The model's answer was rejected ({', '.join(answer.rejected)}): quoting the passages."
    quoted = _extractive(service, question, hits, on_token, started, note=note, tried=backend,
                         quotes=quotes)  # fmt: skip
    return replace(quoted, rejected=answer.rejected)


def _generate(
    service: Service,
    backend: Backend,
    question: str,
    history: list[Turn],
    hits: list[SearchHit],
    sources: list[Source],
    sampling: Sampling,
    on_token: Callable[[str], None] | None,
    started: float,
    *,
    quote: str,
) -> Answer:
    """One try: the model's answer as far as it passed the checks (`rejected` names what failed
    when nothing could be shown); `quote` is the extractive answer it is checked against."""
    prompt = pack_prompt(
        question, sources, history, window=backend.context_window(),
        answer_tokens=sampling.max_tokens, count=backend.count_tokens,
    )  # fmt: skip
    if not prompt.sources:
        raise PromptTooLong(
            f"the model's {backend.context_window()}-token context window leaves no room for "
            f"any passage after the instructions, the question and {sampling.max_tokens} tokens "
            "for the answer — raise ARCHIVIST_LLM_CONTEXT_TOKENS or lower ARCHIVIST_ANSWER_TOKENS"
        )
    texts = [source.text for source in prompt.sources]
    guard = Guard(question, texts, [source.label for source in prompt.sources], quote)
    begun = time.perf_counter()
    channel = service.llm.queue.submit(lambda emit: _stream(backend, prompt, sampling, emit))
    first: float | None = None  # the first text shown
    generated: float | None = None  # the first token the model wrote
    tokens = 0

    def show(text: str) -> None:
        nonlocal first
        if text:
            first = first or time.perf_counter()
            if on_token:
                on_token(text)

    try:
        for piece in channel:
            generated = generated or time.perf_counter()
            tokens += 1
            show(guard.feed(piece))
            if guard.stopped:
                break
        else:
            channel.result()
    finally:
        channel.cancel()  # a reader that went away (or a loop) frees the model at its next token
    ended = time.perf_counter()
    rest, problem = guard.finish()
    text = guard.answer if problem is None else ""
    if text and not parse_citations(text, len(texts)).cited and not is_refusal(text, question):
        # A third of the 0.5B model's answers cite nothing: the excerpt that holds most of
        # the answer's words is cited for it.
        found = likely_source(text, texts)
        if found is not None:
            rest, text = f"{rest} [{found}]", f"{text} [{found}]"
    show(rest)
    parsed = parse_citations(text, len(prompt.sources))
    by_ref = {hit.chunk_id: hit for hit in hits}
    citations = [_citation(n, by_ref[prompt.sources[n - 1].ref]) for n in parsed.cited]
    # Decoding speed, from the model's first token (not the first sentence shown).
    decode_s = ended - generated if generated is not None else 0.0
    return Answer(
        text, citations, backend.name, backend.model, None, "", 0.0,
        _ms(started, first) if first is not None else None, _ms(begun, ended), tokens,
        (tokens - 1) / decode_s if tokens > 1 and decode_s > 0 else None,
        unknown_citations=parsed.unknown, sources=prompt.sources,
        rejected=[guard.problem] if guard.problem else [],
    )  # fmt: skip


def _stream(
    backend: Backend, prompt: Prompt, sampling: Sampling, emit: Callable[[str], None]
) -> None:
    for piece in backend.stream(prompt.messages, sampling):
        emit(piece)


def _sampling(service: Service, options: AskOptions) -> Sampling:
    settings = service.settings

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    return Sampling(
        temperature=pick(options.temperature, settings.temperature),
        max_tokens=pick(options.max_tokens, settings.answer_tokens),
        top_p=pick(options.top_p, settings.top_p),
        top_k=pick(options.top_k_sampling, settings.top_k_sampling),
        seed=pick(options.seed, settings.seed),
    )


def passage_source(hit: SearchHit) -> Source:
    """A search hit as a numbered source for the prompt: file name, page, section, text."""
    label = source_label(Path(hit.path).name, hit.page_start, hit.page_end, hit.section)
    return Source(label=label, text=hit.text, ref=hit.chunk_id)


def _body(hit: SearchHit) -> str:
    """The passage without the heading it opens with: a PDF's text runs a section's heading
    into its first sentence ("2.2 Lens Care The Fresnel lens is cleaned …"), and a quote of
    that sentence would carry it."""
    heading, text = (hit.section[-1] if hit.section else ""), hit.text.lstrip()
    if heading and text.startswith(heading) and text[len(heading) : len(heading) + 1].isspace():
        return text[len(heading) :].lstrip()
    return hit.text


def _withheld(source: Source) -> Source:
    return replace(source, text=withhold_instructions(source.text))


def _citation(n: int, hit: SearchHit) -> Citation:
    section = " > ".join(hit.section) or None
    return Citation(n, hit.path, hit.page_start, section, hit.chunk_id, hit.snippet)


def _focused(question: str, sources: list[Source], best: int, embed: Embed) -> list[Source]:
    """The sources cut to the `best` sentences that answer the question best (scored with the
    already-loaded embedder too); a source without one of them is left out."""
    texts = evidence(question, [source.text for source in sources], best=best, embed=embed)
    focused = [
        replace(s, text=text)
        for s, text in zip(sources, texts, strict=True)
        if text and text != WITHHELD  # (a marker alone is left out of the prompt)
    ]
    return focused or sources  # no sentence to choose (tables, lists of fragments): all of it


def _question_first(embedder: Embedder) -> Embed:
    """Vectors for [question, *sentences]: the question embedded as a query, the sentences as
    documents (models with prefixes tell them apart). A text is embedded once: the evidence
    and the quote read mostly the same sentences."""
    queries: dict[str, list[float]] = {}
    documents: dict[str, list[float]] = {}

    def embed(texts: list[str]) -> list[list[float]]:
        question, sentences = texts[0], texts[1:]
        new = [text for text in dict.fromkeys(sentences) if text not in documents]
        if new or question not in queries:
            vectors = embedder.encode_with_question(question, new).tolist()
            queries[question] = vectors[0]
            documents.update(zip(new, vectors[1:], strict=True))
        return [queries[question]] + [documents[text] for text in sentences]

    return embed


def _quotes(question: str, hits: list[SearchHit], embed: Embed) -> list[Quote]:
    """The passages' sentences that best answer the question (extractive.best_sentences)."""
    return best_sentences(question, [_body(hit) for hit in hits], embed=embed)


def _extractive(
    service: Service,
    question: str,
    hits: list[SearchHit],
    on_token: Callable[[str], None] | None,
    started: float,
    *,
    note: str | None,
    tried: Backend | None = None,
    quotes: list[Quote] | None = None,
) -> Answer:
    """The sentences of the passages that best answer the question (`quotes`, when they were
    chosen already), quoted and cited (`tried`: the model whose answers were rejected; none
    wrote this one)."""
    begun = time.perf_counter()
    if quotes is None:
        quotes = _quotes(question, hits, _question_first(service.indexes.embedder))
    text = quoted_answer(quotes) or _nothing_found(service)
    if on_token:
        on_token(text)
    shown = time.perf_counter()
    cited = list(dict.fromkeys(quote.source for quote in quotes))
    return Answer(
        text, [_citation(n, hits[n - 1]) for n in cited], tried.name if tried else "none",
        tried.model if tried else None, None, "", 0.0,
        _ms(started, shown), _ms(begun, shown), 0, None, extractive=True, note=note,
        sources=[passage_source(hit) for hit in hits],
    )  # fmt: skip
