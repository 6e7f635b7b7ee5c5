#!/usr/bin/env python3
"""Print the option reference tables of docs/config.md from src/server/config.c
(the single source of truth). Usage: scripts/gen-config-doc.py > /tmp/ref.md"""
import os
import re

here = os.path.dirname(os.path.abspath(__file__))
s = open(os.path.join(here, '..', 'src', 'server', 'config.c')).read()
body = s[s.index('const hr_option hr_options[] = {'):s.index('const size_t hr_options_count')]
entries = re.findall(r'\{("[^"]+"),\s*(HR_OPT_\w+),\s*OFF\(\w+\),\s*("[^"]*"),\s*([^,]+),\s*([^,]+),\s*'
                     r'(NULL|"[^"]*"),\s*(NULL|"[^"]*"),\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\}', body)
types = {'HR_OPT_STRING': 'string', 'HR_OPT_INT': 'integer', 'HR_OPT_BOOL': 'bool', 'HR_OPT_SIZE': 'size',
         'HR_OPT_DURATION': 'duration', 'HR_OPT_LIST': 'list of strings'}
cur = None
for key, t, d, mn, mx, env, flag, helpt in entries:
    key = key.strip('"')
    d = d.strip('"') or '(empty)'
    sec = key.split('.')[0]
    if sec != cur:
        cur = sec
        print("\n### [%s]\n" % sec)
        print("| key | type | default | environment / flags | meaning |")
        print("|---|---|---|---|---|")
    text = ''.join(re.findall(r'"((?:[^"\\]|\\.)*)"', helpt)).replace('\\"', '"').replace('|', '\\|')
    names = ['`HERALD_%s`' % key.replace('.', '_').upper()]
    if env != 'NULL':
        names.append('`%s`' % env.strip('"'))
    names.append('`--%s`' % key.replace('_', '-'))
    if flag != 'NULL':
        names.append('`%s`' % flag.strip('"'))
    rng = ' (%s–%s)' % (mn.strip(), mx.strip()) if t == 'HR_OPT_INT' else ''
    print("| `%s` | %s%s | `%s` | %s | %s |" % (key, types[t], rng, d, ', '.join(names), text))
