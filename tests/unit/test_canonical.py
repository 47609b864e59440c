"""Strict JSON parsing and RFC 8785 canonical bytes (exchange.canonical).

The canonical examples are RFC 8785's own (§3.2.2 and §3.2.3); the hostile inputs are the
RELIABILITY rows B09, B10 and B11 and trap V9.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.canonical import MAX_DEPTH, MAX_MESSAGE_BYTES, canonical, parse_strict
from exchange.errors import RejectedMessage

# RFC 8785 §3.2.2, input exactly as printed in the RFC (it has floats: the protocol refuses them
# in parse_strict, but canonical() must still give the RFC's bytes).
RFC_3_2_2_INPUT = r"""{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
# The RFC's output, {"literals":...,"string":"€$\u000f\nA'B\"\\\\\"/"}, as UTF-8 bytes.
RFC_3_2_2_OUTPUT = (
    b'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    b'"string":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)

# RFC 8785 §3.2.3, input exactly as printed in the RFC.
RFC_3_2_3_INPUT = r"""{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"""
# The RFC's expected order: by UTF-16 code units, so the emoji (0xD83D 0xDE00) comes before
# U+FB33 although its code point is higher. "\r" stays escaped, everything else is raw UTF-8.
RFC_3_2_3_OUTPUT = (
    '{"\\r":"Carriage Return",'
    '"1":"One",'
    '"\u0080":"Control",'
    '"\u00f6":"Latin Small Letter O With Diaeresis",'
    '"\u20ac":"Euro Sign",'
    '"\U0001f600":"Emoji: Grinning Face",'
    '"\ufb33":"Hebrew Letter Dalet With Dagesh"}'
).encode("utf-8")


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_objects(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def reason_of(raw: bytes, **kwargs: Any) -> str:
    with pytest.raises(RejectedMessage) as caught:
        parse_strict(raw, **kwargs)
    return caught.value.reason


# --- canonical(): RFC 8785's own examples -----------------------------------------------------


def test_canonical_gives_the_rfc_3_2_2_bytes_for_its_numbers_strings_and_literals() -> None:
    assert canonical(json.loads(RFC_3_2_2_INPUT)) == RFC_3_2_2_OUTPUT


def test_parse_strict_refuses_the_rfc_3_2_2_example_because_it_has_floats() -> None:
    assert reason_of(RFC_3_2_2_INPUT.encode("utf-8")) == "malformed"


def test_canonical_sorts_the_rfc_3_2_3_example_by_utf16_code_units() -> None:
    assert canonical(parse_strict(RFC_3_2_3_INPUT.encode("utf-8"))) == RFC_3_2_3_OUTPUT


def test_canonical_sorts_a_non_bmp_key_before_a_high_bmp_key_unlike_python_sort_keys() -> None:
    value = {"\ufb33": 2, "\U0001f600": 1}
    python_order = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    assert canonical(value) == '{"\U0001f600":1,"\ufb33":2}'.encode()
    assert python_order == '{"\ufb33":2,"\U0001f600":1}'


def test_canonical_does_not_escape_a_script_tag_key_and_sorts_it_by_code_unit() -> None:
    value = {"\u0080": 3, "</script>": 2, "1": 1}

    assert canonical(value) == '{"1":1,"</script>":2,"\u0080":3}'.encode()


def test_canonical_has_no_whitespace_and_does_not_depend_on_member_order() -> None:
    assert canonical({"b": [1, {"d": None, "c": True}], "a": "x"}) == (
        b'{"a":"x","b":[1,{"c":true,"d":null}]}'
    )


def test_canonical_writes_integers_without_a_fraction_or_exponent() -> None:
    assert canonical([0, -1, 2**53 - 1, -(2**53 - 1)]) == (
        b"[0,-1,9007199254740991,-9007199254740991]"
    )


# --- parse_strict(): what it refuses ---------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1,"a":2}',
        b'{"a":1,"a":1}',
        b'{"outer":{"b":1,"b":2}}',
        b'[{"x":null,"y":0,"x":null}]',
    ],
    ids=["different-values", "same-values", "nested", "in-array"],
)
def test_rejects_duplicate_keys(raw: bytes) -> None:
    assert reason_of(raw) == "malformed"


@pytest.mark.parametrize(
    "raw",
    [b"NaN", b"Infinity", b"-Infinity", b"[NaN]", b'{"a":Infinity}', b'{"a":[-Infinity]}'],
)
def test_rejects_nan_and_infinity(raw: bytes) -> None:
    assert reason_of(raw) == "malformed"


@pytest.mark.parametrize(
    "raw",
    [b"1.0", b"1e3", b"1E3", b"1e-3", b"-0.0", b"0.5", b'{"a":1.5}', b"[1,2.0]", b"1E+2"],
)
def test_rejects_any_float(raw: bytes) -> None:
    assert reason_of(raw) == "malformed"


def test_rejects_a_byte_order_mark() -> None:
    assert reason_of(b"\xef\xbb\xbf{}") == "malformed"


@pytest.mark.parametrize(
    "raw",
    [
        b'"\xff"',
        b'{"a":"\xc3"}',
        b'"\xc0\xaf"',  # overlong "/"
        b'"\xed\xa0\x80"',  # a surrogate encoded as UTF-8 (CESU-8)
        "\ufeff{}".encode("utf-16"),
    ],
    ids=["ff-byte", "truncated-sequence", "overlong", "encoded-surrogate", "utf-16"],
)
def test_rejects_invalid_utf8(raw: bytes) -> None:
    assert reason_of(raw) == "malformed"


@pytest.mark.parametrize(
    "raw",
    [b'"\\ud800"', b'"\\udc00"', b'"x\\ud83dy"', b'"\\ude00\\ud83d"', b'{"\\ud800":1}'],
    ids=["high", "low", "high-inside-text", "reversed-pair", "in-a-key"],
)
def test_rejects_a_lone_surrogate_escape(raw: bytes) -> None:
    assert reason_of(raw) == "malformed"


def test_accepts_a_surrogate_pair_escape_as_one_non_bmp_character() -> None:
    assert parse_strict(b'"\\ud83d\\ude00"') == "\U0001f600"


@pytest.mark.parametrize("build", [nested_arrays, nested_objects])
def test_accepts_nesting_exactly_at_max_depth(build: Any) -> None:
    parse_strict(build(MAX_DEPTH))


@pytest.mark.parametrize("build", [nested_arrays, nested_objects])
def test_rejects_nesting_one_deeper_than_max_depth(build: Any) -> None:
    assert reason_of(build(MAX_DEPTH + 1)) == "malformed"


@pytest.mark.parametrize("build", [nested_arrays, nested_objects])
def test_rejects_10_000_deep_nesting_without_a_recursion_error(build: Any) -> None:
    assert reason_of(build(10_000)) == "malformed"


def test_rejects_a_5000_digit_integer() -> None:
    assert reason_of(b"1" * 5_000) == "malformed"
    assert reason_of(b'{"seq":' + b"9" * 5_000 + b"}") == "malformed"


@pytest.mark.parametrize(
    "raw",
    [b"", b"   ", b"{", b'{"a":', b'{"a":1', b"[1,2", b'"abc', b'{"a":tru'],
)
def test_rejects_truncated_json(raw: bytes) -> None:
    assert reason_of(raw) == "malformed"


@pytest.mark.parametrize(
    "raw",
    [b"{} x", b"{}{}", b"[1]]", b"1 2", b'{"a":1},', b"{}\x00"],
)
def test_rejects_trailing_garbage(raw: bytes) -> None:
    assert reason_of(raw) == "malformed"


@pytest.mark.parametrize(
    "raw",
    [b"[1,]", b'{"a":1,}', b"{'a':1}", b"01", b"+1", b'"\x01"', b"[.5]", b"undefined"],
)
def test_rejects_other_json_that_python_or_javascript_might_tolerate(raw: bytes) -> None:
    assert reason_of(raw) == "malformed"


def test_accepts_input_exactly_at_the_size_cap() -> None:
    assert parse_strict(b"12", max_bytes=2) == 12


def test_rejects_input_one_byte_over_the_size_cap_as_too_large() -> None:
    assert reason_of(b"123", max_bytes=2) == "too_large"
    assert parse_strict(b" " * (MAX_MESSAGE_BYTES - 2) + b"{}") == {}
    assert reason_of(b" " * (MAX_MESSAGE_BYTES - 1) + b"{}") == "too_large"


def test_checks_the_size_before_decoding_or_parsing() -> None:
    # Would be "malformed" if it were decoded first.
    assert reason_of(b"\xff" * (MAX_MESSAGE_BYTES + 1)) == "too_large"


def test_rejects_a_huge_input_as_too_large_without_parsing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    huge = b"[" + b"1," * (2 * 1024 * 1024) + b"1]"
    parsed: list[bytes] = []

    def loads(text: bytes, **_kwargs: Any) -> object:
        parsed.append(text)
        return [1]

    monkeypatch.setattr("exchange.canonical.json.loads", loads)

    assert reason_of(huge) == "too_large"
    assert parsed == [], "the size is checked before the JSON parser sees the bytes"


# --- round trip property ---------------------------------------------------------------------

SAFE_INTEGERS = st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | SAFE_INTEGERS | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(database=None)
@given(JSON_VALUES)
def test_canonical_bytes_parse_back_to_the_same_value_and_the_same_bytes(value: Any) -> None:
    data = canonical(value)

    assert parse_strict(data) == value
    assert canonical(parse_strict(data)) == data
