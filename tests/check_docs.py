#!/usr/bin/env python3
"""check_docs.py - fails when a user-facing name the code emits or accepts
is missing from the document an operator or a client reads it in.

Read from the sources, compared with the docs' tables:
- every metric family src/transport/metrics.c writes ("herald_*",
  "process_*" with its type) has a row in docs/operations.md's metric
  table with that type, and every row there is written;
- every log event (hr_logf / hr_logev) has a row in docs/operations.md's
  event table with its level, and every row there is logged;
- every /api/ method src/transport/api.c's router accepts (its methods[]
  table and batch) has a "### name" section in docs/api.md, and every
  section there is accepted;
- every native error code (hr_proto_error in src/protocol/native.h) and
  every disconnect code (hr_disconnect_code in src/protocol/session.h) has
  a row in docs/protocol.md's tables, and each close code raw mode sends
  (src/protocol/raw.c) a row in its "Raw WebSocket mode" section.

Usage: check_docs.py [SOURCE_DIR] (default: the repository holding this
file). Exit 0 when the docs name everything, 1 with one line per gap."""
import os
import re
import sys

# hr_logf(HR_LOG_WARN, "event", ...) / hr_logev(...), and hr_infoev("event", ...) and its kin
LOG_CALL = re.compile(r'\bhr_log(?:f|ev)\(\s*HR_LOG_([A-Z]+),\s*"([a-z0-9_]+)"')
LOG_SHORT = re.compile(r'\bhr_(debug|info|warn|error)ev\(\s*"([a-z0-9_]+)"')


def read(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


def prose(text):
    """text without its fenced code blocks (a shell comment there is no heading)."""
    return re.sub(r"^```.*?^```[^\n]*$", "", text, flags=re.M | re.S)


def section(text, heading):
    """The text under a markdown heading, up to the next heading of its level or above."""
    m = re.search(r"^(#+) " + re.escape(heading) + r"\s*$", text, re.M)
    if not m:
        return ""
    rest = text[m.end():]
    end = re.search(r"^#{1,%d} " % len(m.group(1)), rest, re.M)
    return rest[:end.start()] if end else rest


def table_rows(text):
    """First cells of the markdown table rows in text, with the rest of the row."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 2 and not set(cells[0]) <= set("-: "):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def check_metrics(root):
    src = read(root, "src/transport/metrics.c")
    # a family is a name followed by its type, in a call or a table entry
    fams = dict(re.findall(r'"((?:herald|process)_[a-z0-9_]+)",\s*"(counter|gauge|histogram)"', src))
    # families whose name is an array element (fam[] of metrics_kinds) and their type from the call
    for arr in re.finditer(r'\{\s*("(?:herald|process)_[a-z0-9_]+"(?:\s*,\s*"(?:herald|process)_[a-z0-9_]+")+)\s*\}', src):
        names = re.findall(r'"([a-z0-9_]+)"', arr.group(1))
        for i, n in enumerate(names):
            t = re.search(r'fam\[%d\],\s*"(counter|gauge|histogram)"' % i, src)
            fams.setdefault(n, t.group(1) if t else "?")
    doc = table_rows(section(prose(read(root, "docs/operations.md")), "Metrics"))
    doc = {k: v for k, v in doc.items() if re.match(r"(herald|process)_", k)}
    gaps = []
    for name, typ in sorted(fams.items()):
        if name not in doc:
            gaps.append(f"docs/operations.md: metric {name} ({typ}) is not in the Metrics table")
        elif doc[name][0] != typ:
            gaps.append(f"docs/operations.md: metric {name} is a {typ}, the table says {doc[name][0]}")
    for name in sorted(set(doc) - set(fams)):
        gaps.append(f"docs/operations.md: metric {name} is documented but src/transport/metrics.c does not write it")
    return gaps


def check_logs(root):
    events = {}
    for d, _, files in sorted(os.walk(os.path.join(root, "src"))):
        for name in sorted(files):
            if name.endswith(".c"):
                with open(os.path.join(d, name), encoding="utf-8", errors="replace") as f:
                    text = f.read()
                for lvl, ev in LOG_CALL.findall(text) + LOG_SHORT.findall(text):
                    events.setdefault(ev, set()).add(lvl.lower())
    doc = table_rows(section(prose(read(root, "docs/operations.md")), "Events"))
    doc = {k: v for k, v in doc.items() if k not in ("event",)}
    gaps = []
    for ev, lvls in sorted(events.items()):
        if ev not in doc:
            gaps.append(f"docs/operations.md: log event {ev} ({'/'.join(sorted(lvls))}) is not in the Events table")
        elif doc[ev][0] not in lvls:
            gaps.append(f"docs/operations.md: log event {ev} is logged at {'/'.join(sorted(lvls))}, "
                        f"the table says {doc[ev][0]}")
    for ev in sorted(set(doc) - set(events)):
        gaps.append(f"docs/operations.md: log event {ev} is documented but nothing logs it")
    return gaps


def check_api(root):
    src = read(root, "src/transport/api.c")
    table = re.search(r"\}\s*methods\[\]\s*=\s*\{(.*?)\n\};", src, re.S)
    methods = set(re.findall(r'\{"([a-z_]+)",\s*m_', table.group(1))) if table else set()
    if 'memcmp(name, "batch", 5)' in src:
        methods.add("batch")
    doc = set(re.findall(r"^### ([a-z_]+)\s*$", section(prose(read(root, "docs/api.md")), "Methods"), re.M))
    gaps = [f"docs/api.md: /api/{m} is accepted but has no '### {m}' section" for m in sorted(methods - doc)]
    gaps += [f"docs/api.md: /api/{m} is documented but the router does not accept it" for m in sorted(doc - methods)]
    return gaps


def enum_codes(text, enum):
    body = re.search(r"enum " + enum + r"\s*\{(.*?)\}", text, re.S)
    if not body:
        sys.exit(f"check_docs.py: no enum {enum} in the source: update the checker")
    return dict((int(v), n) for n, v in re.findall(r"(HR_[A-Z_]+)\s*=\s*(\d+)", body.group(1)))


def code_rows(text, ranges=True):
    """Codes a table's first column names: one code, or (ranges) each of A–B."""
    found = set()
    for first in table_rows(text):
        for a, b in re.findall(r"\b(\d{3,4})(?:\s*[–-]\s*(\d{3,4}))?\b", first):
            found.update(range(int(a), int(b or a) + 1) if ranges else [] if b else [int(a)])
    return found


def check_codes(root):
    proto = prose(read(root, "docs/protocol.md"))
    gaps = []
    errors = enum_codes(read(root, "src/protocol/native.h"), "hr_proto_error")
    documented = code_rows(section(proto, "Error codes"))
    gaps += [f"docs/protocol.md: native error {c} ({n}) is not in 'Error codes'"
             for c, n in sorted(errors.items()) if c not in documented]
    discs = enum_codes(read(root, "src/protocol/session.h"), "hr_disconnect_code")
    documented = code_rows(section(proto, "Disconnect (WebSocket close) codes"))
    gaps += [f"docs/protocol.md: disconnect code {c} ({n}) is not in 'Disconnect (WebSocket close) codes'"
             for c, n in sorted(discs.items()) if 3000 <= c < 5000 and c not in documented]
    raw = read(root, "src/protocol/raw.c")
    names = {n: c for c, n in discs.items()}
    # the API's 3000–4999 row there is not a code raw mode sends itself
    documented = code_rows(section(proto, "Raw WebSocket mode"), ranges=False)
    for n in sorted(set(re.findall(r"\b(HR_DISC_[A-Z_]+)\b", raw))):
        if n in names and names[n] >= 3000 and names[n] not in documented:
            gaps.append(f"docs/protocol.md: raw mode closes with {names[n]} ({n}) but its close code table "
                        "does not list it")
    return gaps


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(here)
    gaps = check_metrics(root) + check_logs(root) + check_api(root) + check_codes(root)
    for g in gaps:
        print(g)
    if gaps:
        print(f"{len(gaps)} gap(s) between the code and the docs")
        return 1
    print("ok: metrics, log events, API methods and protocol codes are documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
