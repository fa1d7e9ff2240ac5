#!/usr/bin/env python3
"""Figures typed by hand in the docs: find them, and mark the ones that are results of a past run.

A figure a reader takes for a result (a ratio like 1.07x, a percentage, a time, a decimal number) must
either come out of a committed command (launch/regen_docs.py's generated blocks) or sit in a region
that names the commit that produced it:

    <!-- archived 1a2b3c4 -->
    ... the paragraph or table, as measured then ...
    <!-- /archived -->

    python launch/doc_figures_archive.py --list docs/performance.md     # what is typed by hand, by line
    python launch/doc_figures_archive.py --mark docs/performance.md     # wrap each such block in a region
                                                                        # naming the commit that last wrote it

``--mark`` names, for each block (lines between blank lines, a fenced block kept whole), the newest
commit that touched one of its lines (git blame): the file must be committed first. Code (indented
or in backticks) and quotations in double quotes are not figures. tests/bench/test_docs_regen.py
runs ``hand_typed_figures`` on every page of docs/ and README.md.
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RESULT = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:\s?[-–]\s?\d+(?:\.\d+)?)?\s?(?:x|×|%|ms|s|µs|us|ps/byte)(?!\w)"
                    r"|(?<![\w.])\d+\.\d+(?![\w.])")
GENERATED = re.compile(r"<!-- regen_docs\.py \S+ -->.*?<!-- /regen_docs\.py -->", re.S)
ARCHIVED = re.compile(r"<!-- archived [0-9a-f ]+ -->.*?<!-- /archived -->", re.S)


def hand_typed_figures(text):
    """``[(line, [figures])]`` of ``text`` outside generated blocks, archived regions, code and quotations."""
    text = ARCHIVED.sub("", GENERATED.sub("", text))
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    text = re.sub(r"`[^`]*`|\"[^\"\n]*\"", "", text)
    return [(line, RESULT.findall(line)) for line in text.splitlines()
            if not line.startswith("    ") and RESULT.search(line)]


def _blocks(lines):
    """``(first, last)`` line indices of blocks outside generated and archived regions (a fence kept whole)."""
    blocks, start, fence, inside = [], None, False, 0
    for i, line in enumerate(lines):
        if re.match(r"<!-- (regen_docs\.py \S+|archived [0-9a-f ]+) -->", line.strip()):
            if start is not None:
                blocks.append((start, i - 1))
                start = None
            if not re.search(r"<!-- /(regen_docs\.py|archived) -->", line):      # not a one-line region
                inside += 1
            continue
        if re.match(r"<!-- /(regen_docs\.py|archived) -->", line.strip()):
            inside -= 1
            continue
        if inside:
            continue
        if line.startswith("```"):
            fence = not fence
        if line.strip() == "" and not fence:
            if start is not None:
                blocks.append((start, i - 1))
                start = None
        elif start is None:
            start = i
    if start is not None:
        blocks.append((start, len(lines) - 1))
    return blocks


def _newest_commit(path, first, last):
    out = subprocess.run(["git", "blame", "--porcelain", "-L", f"{first + 1},{last + 1}", "--", str(path)],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    commits = {}
    current = None
    for line in out.splitlines():
        if re.match(r"^[0-9a-f]{40} ", line):
            current = line.split()[0]
        elif line.startswith("committer-time ") and current:
            commits[current] = int(line.split()[1])
    if any(set(c) == {"0"} for c in commits):
        raise SystemExit(f"{path}: lines {first + 1}-{last + 1} are not committed: commit first")
    return max(commits, key=commits.get)[:7]


def mark(path):
    lines = Path(path).read_text().split("\n")
    regions = []
    for first, last in _blocks(lines):
        if hand_typed_figures("\n".join(lines[first:last + 1])):
            regions.append((first, last, _newest_commit(path, first, last)))
    for first, last, commit in reversed(regions):
        lines[first:last + 1] = [f"<!-- archived {commit} -->", *lines[first:last + 1], "<!-- /archived -->"]
    Path(path).write_text("\n".join(lines))
    return len(regions)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mark", action="store_true", help="wrap each block with hand-typed figures")
    parser.add_argument("--list", action="store_true", help="print the hand-typed figures (the default)")
    parser.add_argument("docs", nargs="+")
    args = parser.parse_args(argv)
    left = 0
    for doc in args.docs:
        if args.mark:
            print(f"{doc}: {mark(doc)} block(s) marked archived")
        found = hand_typed_figures(Path(doc).read_text())
        left += len(found)
        for line, figures in found:
            print(f"{doc}: {', '.join(figures)}: {line.strip()[:100]}")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
