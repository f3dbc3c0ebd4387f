"""Zeek's log formats, value by value, against what Zeek's own logging btests expect.

The expected strings are those of Zeek's baselines (testing/btest/Baseline/scripts.base.frameworks.logging.*:
ascii-double, ascii-escape-*, ascii-utf8-enabled*, ascii-line-like-comment, ascii-json-utf8), for the
values their scripts log.
"""
from __future__ import annotations

import math
import random

import pytest
from otsensor.sensor.zeek import format as fmt
from otsensor.sensor.zeek.grisu import grisu2

# ascii-double: (value, ASCII, JSON)
DOUBLES = [
    (2153226000.0, "2153226000.0", "2153226000.0"),
    (2153226000.1, "2153226000.1", "2153226000.1"),
    (2153226000.123456789, "2153226000.123457", "2153226000.123457"),
    (1.0, "1.0", "1.0"),
    (1.1, "1.1", "1.1"),
    (1.123456789, "1.123457", "1.123456789"),
    (-1.123456789, "-1.123457", "-1.123456789"),
    (1.1234, "1.1234", "1.1234"),
    (.1234, "0.1234", "0.1234"),
    (5e4, "50000.0", "50000.0"),
    (-5e4, "-50000.0", "-50000.0"),
    (3.14e15, "3140000000000000.0", "3140000000000000.0"),
    (1.79e308, ("17899999999999999637689952297262604707763763781924021995402759317737096166765929102732906163840610"
                "89314373335294209357527858954441612340749848431789626191723262952442627221417663826222992236264384"
                "70088150218987997954747866198184686628013966119769261150988554952970462018533787926725176560021258"
                "785656871583744.0"), "1.79e308"),
    (1.23456789e-5, "0.000012", "0.0000123456789"),
    (2.23e-308, "0.0", "2.23e-308"),
    (-2.23e-308, "-0.0", "-2.23e-308"),
    (math.inf, "inf", "null"),
    (-math.inf, "-inf", "null"),
    (-0.0, "0.0", "-0.0"),
    (math.nan, "nan", "null"),
]


@pytest.mark.parametrize("value, ascii, json", DOUBLES, ids=[d[1][:20] for d in DOUBLES])
def test_doubles(value, ascii, json):
    assert fmt.ascii_double(value) == ascii
    assert fmt.json_double(value) == json


def test_grisu2_digits_read_back_as_the_same_double():
    rng = random.Random(7)
    for _ in range(2000):
        value = rng.choice([rng.uniform(1e9, 2e9), rng.random(), rng.uniform(0, 1e-3), rng.uniform(1, 1e300)])
        digits, k = grisu2(value)
        assert float(f"{digits}e{k}") == value


def test_grisu2_keeps_its_own_digits_where_they_are_not_the_shortest():
    # Python's repr writes 1636882554.112342; rapidjson (so Zeek's JSON) writes one digit more
    assert fmt.json_double(1636882554.112342) == "1636882554.1123419"


def test_times_and_intervals_have_six_decimals():
    assert fmt.ascii_value(1595660608.237857, "time") == "1595660608.237857"
    assert fmt.ascii_value(0.5, "interval") == "0.500000"


@pytest.mark.parametrize("value, text", [
    ("-", "\\x2d"), ("(empty)", "\\x28empty)"), ("", "(empty)"), (None, "-"),          # ascii-escape-notset-str
    ("foo \xae bar".replace("\xae", "®"), "foo ® bar"), ("hello 𠜎", "hello 𠜎"),     # ascii-utf8-enabled
    (b"foo \n\t\x00 bar", "foo \\x0a\\x09\\x00 bar"),                                   # ...-control-characters
    ("a\\b", "a\\\\b"), (b"\xff\xc3\xa9", "\\xff\\xc3\\xa9"),
])
def test_ascii_strings(value, text):
    assert fmt.ascii_value(value, "string") == text


def test_set_separator_escaped_inside_containers_only():
    # ascii-escape-set-separator
    assert fmt.ascii_value([",", "CC", ",,", "AA"], "set[string]") == "\\x2c,CC,\\x2c\\x2c,AA"
    assert fmt.ascii_value("a,b", "string") == "a,b"
    assert fmt.ascii_value([], "vector[count]") == "(empty)"


def test_a_line_that_reads_as_a_header_is_escaped():
    # ascii-line-like-comment
    assert fmt.ascii_line(["#Kaputt", 42], ["string", "count"]) == "\\x23Kaputt\t42"


# ascii-json-utf8, default escape policy (hex): (Zeek string, JSON)
JSON_STRINGS = [
    (b"a", '"a"'),
    (b"\b\f\n\r\t\x00\x15", '"\\b\\f\\n\\r\\t\\\\x00\\\\x15"'),
    (b"\xc3\xb1", '"ñ"'),
    (b"\xc3\x28", '"\\\\xc3("'),
    (b"\xc0\x81", '"\\\\xc0\\\\x81"'),
    (b"\xe0\x80\xa1", '"\\\\xe0\\\\x80\\\\xa1"'),
    (b"\xed\xa0\xa1", '"\\\\xed\\\\xa0\\\\xa1"'),
    (b"\xf0\x90\x8c\xbc", '"𐌼"'),
    (b"\xf4\x80\x8c\xbc", '"\U0010033c"'),
    (b"\xf4\x90\x8c\xbc", '"\\\\xf4\\\\x90\\\\x8c\\\\xbc"'),
    (b"\\\\", '"\\\\\\\\"'),
    (b"\v\\v\v", '"\\\\x0b\\\\v\\\\x0b"'),
    (b"a rocket \xf0\x9f\x9a\x80!\x00 NUL\x00", '"a rocket \\\\xf0\\\\x9f\\\\x9a\\\\x80!\\\\x00 NUL\\\\x00"'),
    (b"\x07\x08", '"\\\\x07\\b"'),
]


@pytest.mark.parametrize("value, text", JSON_STRINGS)
def test_json_strings(value, text):
    assert fmt.json_string(value) == text


def test_json_line_leaves_unset_fields_out():
    line = fmt.json_line(["ts", "uid", "n", "v", "ok"], [1.5, "C1", None, [1, 2], True],
                         ["time", "string", "count", "vector[count]", "bool"])
    assert line == '{"ts":1.5,"uid":"C1","v":[1,2],"ok":true}'


def test_zeek_time_recovers_microseconds():
    assert fmt.ascii_value(fmt.zeek_time(1595660608 + 237928 * 1e-6), "time") == "1595660608.237928"
    # a nanosecond capture's time is cut to the microsecond, as libpcap hands it to Zeek
    assert fmt.ascii_value(fmt.zeek_time(1595660608 + 237928600 * 1e-9), "time") == "1595660608.237928"


def test_header_lines():
    header = fmt.ascii_header("conn", ["ts", "uid"], ["time", "string"], 0)
    lines = header.splitlines()
    assert lines[:5] == ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-",
                         "#path\tconn"]
    assert lines[5].startswith("#open\t") and len(lines[5].split("\t")[1]) == len("2020-01-01-00-00-00")
    assert lines[6:] == ["#fields\tts\tuid", "#types\ttime\tstring"]
