"""Independent readers for what a SIEM receives, written from the specifications, not from our writers.

- RFC 5424 (section 6): HEADER SP STRUCTURED-DATA [SP MSG]; SD-PARAM values unescape \\" \\\\ \\].
- CEF (ArcSight "Implementing ArcSight CEF"): header fields split on unescaped "|"; extension keys are the
  word before an unescaped "="; values unescape \\\\ \\= \\n \\r.
- LEEF 2.0 (IBM): six "|" fields, the sixth naming the attribute delimiter (a character or x/0x + hex).
"""
from __future__ import annotations

import re

BOM = "\ufeff"
_SD_ELEMENT = re.compile(r'\[([^\s\]=\"]+)((?:\s+[^\s\]=\"]+="(?:[^"\\]|\\.)*")*)\]')
_SD_PARAM = re.compile(r'([^\s\]=\"]+)="((?:[^"\\]|\\.)*)"')


def parse_rfc5424(raw: str) -> dict:
    m = re.match(r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) ", raw)
    assert m, f"not an RFC 5424 message: {raw[:120]!r}"
    out = {"pri": int(m.group(1)), "timestamp": m.group(2), "hostname": m.group(3), "app": m.group(4),
           "procid": m.group(5), "msgid": m.group(6), "sd": {}}
    rest = raw[m.end():]
    if rest.startswith("-"):
        rest = rest[1:]
    else:
        while rest.startswith("["):
            el = _SD_ELEMENT.match(rest)
            assert el, f"bad structured data: {rest[:120]!r}"
            out["sd"][el.group(1)] = {k: re.sub(r'\\(["\\\]])', r"\1", v) for k, v in _SD_PARAM.findall(el.group(2))}
            rest = rest[el.end():]
    assert rest == "" or rest.startswith(" "), rest[:40]
    msg = rest[1:]
    out["bom"] = msg.startswith(BOM)
    out["msg"] = msg[1:] if out["bom"] else msg
    return out


def _split_unescaped(text: str, sep: str, limit: int) -> list[str]:
    """Split on ``sep`` not preceded by an escaping backslash, at most ``limit`` times."""
    parts, current, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if c == sep and len(parts) < limit:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str, table: dict[str, str]) -> str:
    return re.sub(r"\\(.)", lambda m: table.get(m.group(1), "\\" + m.group(1)), text)


def parse_cef(text: str) -> dict:
    assert text.startswith("CEF:0|"), text[:40]
    fields = _split_unescaped(text[len("CEF:0|"):], "|", 6)
    assert len(fields) == 7, fields
    header = [_unescape(f, {"|": "|", "\\": "\\"}) for f in fields[:6]]
    ext = fields[6]
    # key positions: a run of key characters right before an unescaped "=", at the start or after a space
    keys = []
    for m in re.finditer(r"(?:^|(?<= ))([A-Za-z0-9_.]+)=", ext):
        backslashes = len(ext[:m.start(1)]) - len(ext[:m.start(1)].rstrip("\\"))
        if backslashes % 2 == 0:
            keys.append(m)
    values = {}
    for k, m in enumerate(keys):
        end = keys[k + 1].start(1) - 1 if k + 1 < len(keys) else len(ext)
        raw = ext[m.end():end]
        assert re.search(r"(?<!\\)(?:\\\\)*=", raw) is None, f"unescaped '=' in CEF value {raw!r}"
        values[m.group(1)] = _unescape(raw, {"\\": "\\", "=": "=", "n": "\n", "r": "\r"})
    names = ("vendor", "product", "version", "signature", "name", "severity")
    return {**dict(zip(names, header)), "ext": values}


def parse_leef(text: str) -> dict:
    assert text.startswith("LEEF:2.0|"), text[:40]
    fields = _split_unescaped(text[len("LEEF:2.0|"):], "|", 5)
    assert len(fields) == 6, fields
    delim_spec = fields[4]
    if re.fullmatch(r"(?:0x|x)[0-9A-Fa-f]{1,4}", delim_spec):
        delim = chr(int(delim_spec.split("x", 1)[1], 16))
    else:
        assert len(delim_spec) == 1, delim_spec
        delim = delim_spec
    header = [_unescape(f, {"|": "|", "\\": "\\"}) for f in fields[:4]]
    attrs = {}
    for pair in fields[5].split(delim):
        key, sep, value = pair.partition("=")
        assert sep, f"LEEF attribute without '=': {pair!r}"
        attrs[key] = _unescape(value, {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"})
    return {"vendor": header[0], "product": header[1], "version": header[2], "event_id": header[3],
            "delimiter": delim, "attrs": attrs}
