"""BM25 keyword index over chunks, kept on disk with Tantivy."""

from __future__ import annotations

import string
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import tantivy

from retrieval.errors import IndexBusy, RetrievalError

# NLTK's English list (the apostrophe forms dropped: the tokenizer splits "don't" into the
# fragments "don" and "t", which are listed). Removing these from long questions is what lifts
# BM25 on natural-language queries; documents are indexed with every word.
_STOPWORD_TEXT = """
    a about above after again against ain all am an and any are aren as at be because been
    before being below between both but by can couldn d did didn do does doesn doing don down
    during each few for from further had hadn has hasn have haven having he her here hers
    herself him himself his how i if in into is isn it its itself just ll m ma me mightn more
    most mustn my myself needn no nor not now o of off on once only or other our ours
    ourselves out over own re s same shan she should shouldn so some such t than that the
    their theirs them themselves then there these they this those through to too under until
    up ve very was wasn we were weren what when where which while who whom why will with won
    wouldn y you your yours yourself yourselves
"""
STOPWORDS: frozenset[str] = frozenset(_STOPWORD_TEXT.split())

# Title words are indexed in the body too, and the title field adds only a small bonus.
# nDCG@10 measured here: cisi 0.398 / squad-dev 0.884 this way, against 0.373 / 0.875 with
# separate title and body fields and 0.353 / 0.871 when the title field is boosted 1.5.
TITLE_BOOST = 0.25
_ID, _TITLE, _BODY = "chunk_id", "title", "body"
_WRITER_HEAP = 64_000_000
_ID_TERMS_UP_TO = 4096  # chunk ids matched one term query each (`_ids_query`)
WRITER_WAIT_S = 60.0

# How text becomes terms, recorded beside the index: an index whose terms were made another
# way is reported damaged and refilled from SQLite (seconds, no embedding), never searched
# with terms it does not hold. 1 (no record): Tantivy's en_stem alone. 2: every place two
# letters met two digits split. 3: `split_joined` (two-part words only).
ANALYSIS_VERSION = 3
_ANALYSIS_FILE = "archivist-analysis"


@dataclass(frozen=True)
class KeywordDoc:
    """One chunk as the keyword index sees it: its id, heading path/title and text; on a
    Qdrant server also what a replica cites it by (`payload`: the Tantivy leg ignores it)."""

    chunk_id: str
    title: str
    body: str
    payload: Mapping[str, Any] | None = field(default=None, compare=False)


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    # "raw" keeps the id as one exact term, so delete_documents_by_term can find it.
    builder.add_text_field(_ID, stored=True, tokenizer_name="raw")
    builder.add_text_field(_TITLE, tokenizer_name="en_stem")
    builder.add_text_field(_BODY, tokenizer_name="en_stem")
    return builder.build()


def _analyzer(*, stopwords: bool) -> tantivy.TextAnalyzer:
    # Mirrors Tantivy's built-in "en_stem" (simple tokenizer, drop tokens over 40 chars,
    # lowercase, English Snowball stemmer) so query terms equal indexed terms exactly; queries
    # lose their stopwords before stemming. Documents keep every word: the keyword leg on
    # Qdrant (keyword_server.py) weighs their terms in Python, as Tantivy indexes them.
    builder = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
    )
    if stopwords:
        builder = builder.filter(tantivy.Filter.custom_stopword(sorted(STOPWORDS)))
    return builder.filter(tantivy.Filter.stemmer("english")).build()


_ANALYZER = _analyzer(stopwords=True)
_DOCUMENT_ANALYZER = _analyzer(stopwords=False)

# Found on a map of the text, one byte a character (ASCII letters "a", ASCII digits "0",
# anything else " "), with bytes.find: 5-8 µs a chunk of real text, where a pattern over every
# word took ~85 µs, time the index writer holds the interpreter.
_SHAPES = bytes(
    ord("a") if chr(b) in string.ascii_letters else ord("0") if chr(b) in string.digits else 32
    for b in range(256)
)


def split_joined(text: str) -> str:
    """The text with each two-part word — letters then digits or digits then letters, two or
    more of each — written as two: "FY2022" and "iPhone12" are searched as "FY 2022" and
    "iPhone 12", as people also write them. Codes that alternate more ("tok160x", "ab12cd34")
    or have a single letter or digit ("3M", "mp3", "H100") stay whole. On financebench-dev a
    question's "FY2022" then matches the year in its filing: the right filing first for 26 of
    30 questions instead of 24; the BEIR dev sets moved by at most 0.001."""
    shape = text.encode("latin-1", errors="replace").translate(_SHAPES)
    cuts = []
    for joined in (b"aa00", b"00aa"):
        at = shape.find(joined)
        while at != -1:
            end = shape.find(b" ", at)
            word = shape[shape.rfind(b" ", 0, at) + 1 : end if end != -1 else len(shape)]
            if word.count(b"a0") + word.count(b"0a") == 1:  # two parts, not a code
                cuts.append(at + 2)
            at = shape.find(joined, at + 2)
    if not cuts:
        return text
    bounds = [0, *sorted(cuts), len(text)]
    return " ".join(text[start:end] for start, end in zip(bounds, bounds[1:], strict=False))


def query_terms(text: str) -> list[str]:
    """Return the indexed terms a query searches for: stemmed, stopwords removed."""
    return _ANALYZER.analyze(split_joined(text))


def document_terms(text: str) -> list[str]:
    """Return the terms a document's text is indexed under: every word, stemmed, with
    two-part words split (as `KeywordIndex.upsert` indexes it)."""
    return _DOCUMENT_ANALYZER.analyze(split_joined(text))


class KeywordIndex:
    """A Tantivy BM25 index in one folder, keyed by chunk id."""

    def __init__(self, path: Path, *, writer_wait_s: float = WRITER_WAIT_S) -> None:
        self.path = Path(path)
        self.writer_wait_s = writer_wait_s
        self.path.mkdir(parents=True, exist_ok=True)
        self._schema = _schema()
        analysis = self.path / _ANALYSIS_FILE
        if not (self.path / "meta.json").exists():  # a new index: recorded before it exists,
            analysis.write_text(f"{ANALYSIS_VERSION}\n")  # so no one opens it unrecorded
        try:
            self._index = tantivy.Index(self._schema, path=str(self.path), reuse=True)
        except ValueError as exc:
            raise RetrievalError(
                f"{self.path}: keyword index cannot be opened ({exc}) — delete the folder "
                "and run `archivist reindex`"
            ) from exc
        if _recorded_analysis(analysis) != ANALYSIS_VERSION:
            raise RetrievalError(
                f"{self.path}: keyword index built by an older Archivist, which split text into "
                "words differently — `archivist ingest`, `serve` or `reindex` refills it from "
                "SQLite (seconds, nothing is embedded again)"
            )
        self._writer: tantivy.IndexWriter | None = None

    def _open_writer(self) -> tantivy.IndexWriter:
        # Opened on first write and kept: Tantivy allows one writer per index, and a
        # process that only searches should not take the lock. Another writer (an ingest
        # in another process) is waited for, `writer_wait_s` at most.
        deadline = time.monotonic() + self.writer_wait_s
        while self._writer is None:
            try:
                writer = self._index.writer(_WRITER_HEAP, 1)
                # A commit cut short (kill -9, power loss) can leave its delete file behind,
                # unreferenced; the next commit that reaches the same operation number would
                # fail on it ("FileAlreadyExists ….del"). Tantivy lists every file it writes
                # before writing it, so its collector removes what no commit refers to.
                writer.garbage_collect_files()
                self._writer = writer
            except ValueError as exc:
                if "LockBusy" not in str(exc):  # not another writer: the folder itself
                    raise RetrievalError(
                        f"{self.path}: the keyword index cannot be written ({exc}) — run "
                        "`archivist reindex`, which rebuilds it from SQLite"
                    ) from exc
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise IndexBusy(
                    f"{self.path}: the keyword index is being written by another Archivist "
                    f"process (waited {self.writer_wait_s:.0f} s) — let it finish, or stop it "
                    "(`archivist serve`, `archivist watch`), and run the command again"
                ) from exc
        return self._writer

    def upsert(self, docs: Sequence[KeywordDoc]) -> None:
        """Replace or add documents by chunk id; visible after `commit()`."""
        writer = self._open_writer()
        for doc in docs:
            writer.delete_documents_by_term(_ID, doc.chunk_id)
            title = split_joined(doc.title)  # no word spans the blank line: split each once
            writer.add_document(
                tantivy.Document(
                    chunk_id=doc.chunk_id, title=title, body=f"{title}\n\n{split_joined(doc.body)}"
                )
            )

    def delete(self, chunk_ids: Iterable[str]) -> None:
        """Remove documents by chunk id (unknown ids are ignored); visible after `commit()`."""
        writer = self._open_writer()
        for chunk_id in chunk_ids:
            writer.delete_documents_by_term(_ID, chunk_id)

    def commit(self) -> None:
        """Make pending changes durable and visible to searches."""
        if self._writer is not None:
            try:
                self._writer.commit()
            except ValueError as exc:  # the folder gone or unwritable: nothing was committed
                raise RetrievalError(
                    f"{self.path}: the keyword index could not be saved ({exc}) — the changes "
                    "stay queued in SQLite; `archivist reindex` rebuilds the index from it"
                ) from exc
        self._index.reload()

    def clear(self) -> None:
        """Delete every document, pending ones included, and commit."""
        writer = self._open_writer()
        # delete_all_documents() leaves documents added since the last commit in place
        # (it rewinds the opstamp to the last commit), so drop those first.
        writer.rollback()
        writer.delete_all_documents()
        self.commit()

    def search(
        self, query: str, limit: int = 50, *, only_ids: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """Return (chunk_id, BM25 score) pairs, best first; never raises on odd query text.

        `only_ids` restricts the search to those chunks (for filters).
        """
        built = self._build_query(query)
        if built is None or limit <= 0 or (only_ids is not None and not only_ids):
            return []  # (Tantivy panics on limit 0.)
        if only_ids is not None:
            allowed = self._ids_query(only_ids)
            built = tantivy.Query.boolean_query(
                [
                    (tantivy.Occur.Must, built),
                    (tantivy.Occur.Must, tantivy.Query.const_score_query(allowed, 0.0)),
                ]
            )
        searcher = self._index.searcher()
        hits = searcher.search(built, limit, count=False).hits
        return [(searcher.doc(address)[_ID][0], float(score)) for score, address in hits]

    def _ids_query(self, ids: Collection[str]) -> tantivy.Query:
        """Matches these chunk ids. One term query per id up to a few thousand ids (40 ids:
        0.42 ms against 1.18 ms for a term set, which builds an automaton first; 1,000 ids:
        5.8 against 12.5 ms), a term set beyond (20,000 ids: 139 against 159 ms)."""
        if len(ids) > _ID_TERMS_UP_TO:
            return tantivy.Query.term_set_query(self._schema, _ID, list(ids))
        terms = [tantivy.Query.term_query(self._schema, _ID, i) for i in ids]
        return tantivy.Query.boolean_query([(tantivy.Occur.Should, term) for term in terms])

    def _build_query(self, text: str) -> tantivy.Query | None:
        counts = Counter(query_terms(text))
        if not counts:
            return None
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        for term, count in counts.items():
            # A repeated word counts once per occurrence, as in classic BM25 query scoring
            # (deduplicating cost about 0.07 nDCG@10 on cisi).
            title = tantivy.Query.term_query(self._schema, _TITLE, term, index_option="freq")
            body = tantivy.Query.term_query(self._schema, _BODY, term, index_option="freq")
            clauses.append((tantivy.Occur.Should, _boosted(title, TITLE_BOOST * count)))
            clauses.append((tantivy.Occur.Should, _boosted(body, count)))
        return tantivy.Query.boolean_query(clauses)

    def count(self) -> int:
        """Return the number of committed documents."""
        return int(self._index.searcher().num_docs)

    def present(self, ids: Collection[str]) -> set[str]:
        """Those of these chunk ids that are committed."""
        if not ids:
            return set()
        searcher = self._index.searcher()
        hits = searcher.search(self._ids_query(ids), len(ids), count=False).hits
        return {searcher.doc(address)[_ID][0] for _, address in hits}

    def chunk_ids(self) -> set[str]:
        """Return every committed chunk id (for consistency checks against the store)."""
        searcher = self._index.searcher()
        total = searcher.num_docs
        if total == 0:
            return set()
        hits = searcher.search(tantivy.Query.all_query(), total, count=False).hits
        return {searcher.doc(address)[_ID][0] for _, address in hits}

    def close(self) -> None:
        """Release the writer (and its lock); uncommitted changes are discarded."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.wait_merging_threads()  # consumes the writer; pending changes are dropped

    def __enter__(self) -> KeywordIndex:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _boosted(query: tantivy.Query, boost: float) -> tantivy.Query:
    return query if boost == 1 else tantivy.Query.boost_query(query, boost)


def _recorded_analysis(path: Path) -> int:
    """The analysis version an index folder records; 1 where it records none."""
    try:
        return int(path.read_text())
    except FileNotFoundError:
        return 1
    except ValueError:
        return 0
