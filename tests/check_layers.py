#!/usr/bin/env python3
"""check_layers.py - fails when a file in src/ includes a header of a higher
layer.

The layers and their order are read from the block under "## Layers" in
docs/architecture.md (first word of each line, highest first), so the
document and the check cannot disagree. A file's layer is its directory
under src/ (src/hub/hub.c -> hub); an `#include "x/y.h"` names layer x. A
file may include its own layer and any layer below it; including a higher
layer, or a directory the document does not place, is a violation.

ALLOWED lists the violations the tree still has, each with the reason and
the work that removes it: they pass, every other one fails. An entry that
no longer occurs is reported (remove it) but does not fail the check.

Usage: check_layers.py [SOURCE_DIR] (default: the repository holding this
file). Exit 0 when clean, 1 with one line per violation otherwise."""
import os
import re
import sys

# (file under src/, included header) -> reason
ALLOWED = {}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)/[^"]+"', re.M)


def read_layers(root):
    """Layer names from docs/architecture.md, highest first."""
    path = os.path.join(root, "docs", "architecture.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^## Layers\s*\n.*?^```\n(.*?)^```", text, re.M | re.S)
    if not m:
        sys.exit(f"{path}: no ``` block under '## Layers'")
    names = [line.split()[0] for line in m.group(1).splitlines() if line.strip()]
    if len(set(names)) != len(names):
        sys.exit(f"{path}: a layer is listed twice: {names}")
    return names


def violations(root, layers):
    """(file, header, why) for each include of a higher or unplaced layer,
    and the set of (file, header) pairs seen."""
    rank = {name: len(layers) - i for i, name in enumerate(layers)}
    src = os.path.join(root, "src")
    found, seen = [], set()
    for d, _, files in sorted(os.walk(src)):
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(d, name)
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            own = rel.split("/")[0]
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            for m in INCLUDE.finditer(text):
                target = m.group(1)
                header = m.group(0).split('"')[1]
                if own not in rank:
                    why = f"layer '{own}' is not placed in docs/architecture.md"
                elif target not in rank:
                    why = f"layer '{target}' is not placed in docs/architecture.md"
                elif rank[target] > rank[own]:
                    why = f"{own} is below {target}"
                else:
                    continue
                seen.add((rel, header))
                found.append((rel, header, why))
    return found, seen


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(here)
    layers = read_layers(root)
    found, seen = violations(root, layers)
    bad = [v for v in found if (v[0], v[1]) not in ALLOWED]
    print("layers, highest first: " + " > ".join(layers))
    for rel, header in sorted(ALLOWED):
        if (rel, header) in seen:
            print(f"allowed: src/{rel} includes {header} ({ALLOWED[(rel, header)]})")
        else:
            print(f"note: allow-list entry src/{rel} -> {header} no longer occurs: remove it")
    for rel, header, why in bad:
        print(f"VIOLATION: src/{rel} includes \"{header}\": {why}")
    if bad:
        print(f"{len(bad)} layering violation(s); calls go down (docs/architecture.md, Layers)")
        return 1
    print(f"ok: no new layering violation ({len(found)} allowed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
