#!/usr/bin/env python3
"""Checks that a shipped ferry.ini documents every option of every plugin.

check_config.py PLUGINS_OUTPUT INI: PLUGINS_OUTPUT is what `ferry plugins` printed. Each plugin
must have exactly one section with `plugin = <name>` and `enabled = false`, and every option of
the plugin and every host setting of its kind must appear commented out (`;name =`) in it. No
option may be set (uncommented) in a plugin section.
"""
import re
import sys

plugins_text, ini_path = open(sys.argv[1]).read(), sys.argv[2]
plugins, host = {}, {"source": [], "sink": []}
current = None
for line in plugins_text.splitlines():
    m = re.match(r"^(\w+) \((source|sink), version ", line)
    if m:
        current = plugins.setdefault(m.group(1), {"kind": m.group(2), "options": []})["options"]
        continue
    m = re.match(r"^Host settings, allowed in every \[(source|sink)\.", line)
    if m:
        current = host[m.group(1)]
        continue
    m = re.match(r"^    ([a-z0-9_]+) ", line)
    if m and current is not None:
        current.append(m.group(1))

if not plugins or not host["source"] or not host["sink"]:
    sys.exit(f"could not read `ferry plugins` output: {plugins_text[:400]}")

sections, name = {}, None
for raw in open(ini_path, encoding="utf-8"):
    line = raw.strip()
    m = re.match(r"^\[(.+)\]$", line)
    if m:
        name = m.group(1)
        sections[name] = {"set": {}, "commented": set()}
        continue
    if name is None or not line:
        continue
    if line.startswith(";"):
        m = re.match(r"^;([a-z0-9_]+) =", line)
        if m:
            sections[name]["commented"].add(m.group(1))
        continue
    key, _, value = line.partition("=")
    sections[name]["set"][key.strip()] = value.strip()

errors = []
for plugin, info in sorted(plugins.items()):
    found = [s for s, v in sections.items() if v["set"].get("plugin") == plugin]
    if len(found) != 1:
        errors.append(f"{plugin}: {len(found)} sections with plugin = {plugin}, want 1")
        continue
    sec = sections[found[0]]
    if not found[0].startswith(info["kind"] + "."):
        errors.append(f"{plugin}: section [{found[0]}] is not a {info['kind']} section")
    if sec["set"].get("enabled") != "false":
        errors.append(f"[{found[0]}]: enabled must be false")
    extra = set(sec["set"]) - {"plugin", "enabled"}
    if extra:
        errors.append(f"[{found[0]}]: options set in the shipped config: {sorted(extra)}")
    for opt in info["options"] + host[info["kind"]]:
        if opt not in sec["commented"]:
            errors.append(f"[{found[0]}]: option {opt} is not documented")
    print(f"[{found[0]}] {plugin}: {len(info['options'])} options, "
          f"{len(host[info['kind']])} host settings documented")
if "host" not in sections:
    errors.append("no [host] section")
if errors:
    sys.exit("\n".join(errors))
