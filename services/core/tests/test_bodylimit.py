"""The JSON depth scanner: nesting counted across chunks, strings and escapes skipped."""

from __future__ import annotations

import json

import pytest

from panorama.core.bodylimit import DepthScanner, is_json


def scan(text: str, limit: int, chunk: int) -> bool:
    scanner = DepthScanner(limit)
    data = text.encode()
    return all(scanner.feed(data[i : i + chunk]) for i in range(0, len(data), chunk))


@pytest.mark.parametrize("chunk", [1, 2, 7, 10_000])
def test_depth_is_counted_across_chunk_boundaries(chunk: int) -> None:
    assert scan("[" * 64 + "]" * 64, 64, chunk)
    assert not scan("[" * 65 + "]" * 65, 64, chunk)
    assert not scan('{"a":' * 65 + "1" + "}" * 65, 64, chunk)


@pytest.mark.parametrize("chunk", [1, 3, 10_000])
def test_brackets_inside_strings_and_escapes_do_not_count(chunk: int) -> None:
    text = json.dumps({"s": '[[[[\\"{{{{' + "[" * 200, "t": "\\\\", "u": [[1]]})
    assert scan(text, 3, chunk)
    assert not scan(json.dumps({"s": '"]]]]', "u": [[[[1]]]]}), 3, chunk)


def test_only_json_media_types_are_checked() -> None:
    assert is_json(None)
    assert is_json("application/json; charset=utf-8")
    assert is_json("application/merge-patch+json")
    assert not is_json("multipart/form-data; boundary=x")
    assert not is_json("text/plain")
