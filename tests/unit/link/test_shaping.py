"""A link's shaping as users spell it: durations, percentages, tc's rates, and the JSON form.

Every refusal is a GdkGeoError that names the flag and shows a valid example, whatever the
text; the units follow ping (a round trip in ms) and tc (`mbit` bits, `mbps` bytes).
"""

from __future__ import annotations

import json
import math

import pytest
from fuzzing import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from gdk_geo.errors import GdkGeoError
from gdk_geo.link.shaping import (
    RATE_SCALE_BITS,
    Shaping,
    describe_rate,
    parse_duration_ms,
    parse_percent,
    parse_rate,
)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("80ms", 80), ("0.2s", 200), ("80", 80), ("500us", 0.5), (" 80 ms ", 80), ("1.5S", 1500)],
)
def test_durations_read_in_milliseconds(text: str, ms: float) -> None:
    assert parse_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize(("text", "percent"), [("1%", 1), ("0.5", 0.5), ("100%", 100), ("0", 0)])
def test_percentages_read_bare_or_with_a_sign(text: str, percent: float) -> None:
    assert parse_percent(text) == percent


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("50mbit", 50_000_000),
        ("100kbit", 100_000),
        ("1gbit", 1_000_000_000),
        ("20mbps", 160_000_000),  # tc: bytes
        ("8mibit", 8 * 2**20),
        ("1kibps", 8 * 1024),
        ("1000", 1000),  # tc: a bare number is bits
        ("50MBit", 50_000_000),  # tc matches suffixes without case
        ("0", 0),  # unlimited
    ],
)
def test_rates_read_as_tc_reads_them(text: str, bits: int) -> None:
    assert parse_rate(text) == bits


@pytest.mark.parametrize(
    ("parse", "text", "flag", "example"),
    [
        (parse_duration_ms, "", "--latency", "80ms"),
        (parse_duration_ms, "-5ms", "--latency", "80ms"),
        (parse_duration_ms, "80 minutes", "--latency", "80ms"),
        (parse_duration_ms, "nan", "--latency", "80ms"),
        (parse_percent, "101%", "--loss", "1%"),
        (parse_percent, "1%%", "--loss", "1%"),
        (parse_percent, "-1", "--loss", "1%"),
        (parse_rate, "50mb", "--rate", "50mbit"),
        (parse_rate, "fast", "--rate", "50mbit"),
        (parse_rate, "2tbit", "--rate", "50mbit"),
        (parse_rate, "0.1bit", "--rate", "50mbit"),
    ],
)
def test_a_bad_value_names_its_flag_and_a_good_one(parse, text, flag, example) -> None:
    with pytest.raises(GdkGeoError) as raised:
        parse(text)

    assert raised.value.what.startswith(f"{flag} {text!r} is not")
    assert f"`{flag} {example}" in raised.value.fix


def test_the_flag_in_the_message_is_the_callers() -> None:
    with pytest.raises(GdkGeoError, match="--jitter"):
        parse_duration_ms("soon", flag="--jitter")


def test_a_pasted_megabyte_is_not_echoed_whole() -> None:
    with pytest.raises(GdkGeoError) as raised:
        parse_rate("9" * 1_000_000 + "x")

    assert len(raised.value.what) < 300


@pytest.mark.parametrize(
    ("shaping", "text"),
    [
        (Shaping(), "none"),
        (Shaping(latency_ms=80, jitter_ms=10, loss_percent=1, rate_bits=50_000_000), None),
        (Shaping(latency_ms=80), "80 ms"),
        (Shaping(loss_percent=0.5), "0.5% loss"),
        (Shaping(rate_bits=1_500_000_000), "1.5 Gbit/s"),
        (Shaping(latency_ms=80, down=True), "down"),
    ],
)
def test_describe_is_one_phrase(shaping: Shaping, text: str | None) -> None:
    assert shaping.describe() == (text or "80 ms ±10 ms, 1% loss, 50 Mbit/s")


@pytest.mark.parametrize(
    ("bits", "text"), [(100_000, "100 kbit/s"), (20_000_000, "20 Mbit/s"), (999, "999 bit/s")]
)
def test_rates_are_described_in_their_largest_unit(bits: int, text: str) -> None:
    assert describe_rate(bits) == text


@pytest.mark.parametrize(
    "values",
    [
        {"latency_ms": -1},
        {"jitter_ms": math.inf},
        {"loss_percent": 101},
        {"rate_bits": -1},
        {"rate_bits": 1.5},
        {"latency_ms": True},
        {"latency_ms": "80"},
        {"down": "yes"},
        {"delay_ms": 80},  # a typo is not ignored
    ],
)
def test_the_json_form_refuses_what_it_cannot_play(values: dict) -> None:
    with pytest.raises(GdkGeoError) as raised:
        Shaping.from_json(values)
    assert raised.value.what


def test_missing_keys_take_the_perfect_links_values() -> None:
    assert Shaping.from_json({"latency_ms": 80}) == Shaping(latency_ms=80)
    assert Shaping.from_json({}) == Shaping()


shapings = st.builds(
    Shaping,
    latency_ms=st.floats(0, 10_000, allow_nan=False),
    jitter_ms=st.floats(0, 10_000, allow_nan=False),
    loss_percent=st.floats(0, 100, allow_nan=False),
    rate_bits=st.integers(0, 10**12),
    down=st.booleans(),
)


@settings(max_examples=examples(200), deadline=None)
@given(shapings)
def test_the_json_form_round_trips(shaping: Shaping) -> None:
    assert Shaping.from_json(json.loads(json.dumps(shaping.to_json()))) == shaping
    assert shaping.describe()


@settings(max_examples=examples(300), deadline=None)
@given(st.integers(0, 10**9), st.sampled_from(sorted(RATE_SCALE_BITS)))
def test_every_tc_unit_scales_a_whole_number(number: int, unit: str) -> None:
    bits = number * RATE_SCALE_BITS[unit]
    if bits > 10**12:
        with pytest.raises(GdkGeoError):
            parse_rate(f"{number}{unit}")
    else:
        assert parse_rate(f"{number}{unit.upper()}") == round(bits)


@settings(max_examples=examples(300), deadline=None)
@given(st.text(max_size=30))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    for parse in (parse_duration_ms, parse_percent, parse_rate):
        try:
            value = parse(text)
        except GdkGeoError as exc:
            assert exc.what and exc.fix
        else:
            assert math.isfinite(value) and value >= 0
