"""zeek-cut, for the reference tests: the columns of a Zeek ASCII log by name, without its header lines.

``zeek-cut a b`` prints those columns; ``zeek-cut -n a b`` every column but those (Zeek's own tool).
"""
from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    negate = "-n" in argv
    names = [a for a in argv if not a.startswith("-")]
    fields: list[str] = []
    for line in sys.stdin.read().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if line.startswith("#"):
            continue
        cells = line.split("\t")
        keep = [i for i, f in enumerate(fields) if (f in names) != negate] if negate else \
            [fields.index(n) for n in names if n in fields]
        sys.stdout.write("\t".join(cells[i] for i in keep) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
