#!/usr/bin/env bash
# Docs that stay true: every test name, file path and command that README.md and docs/*.md
# mention in backticks or code blocks must exist. Prints each stale mention as
# `file:line: kind 'text'` and fails if there is any.
#
# - test names: backticked snake_case identifiers of four words or more (the shape of our
#   test names; `fetch_handler` is too short to be one) must be some `fn <name>` in a .rs
#   file;
# - paths: backticked words with a known extension (.rs, .md, .sh, .toml, ...), or
#   directories with an inner slash (`examples/dist/`; a bare `blobs/` names the store's
#   layout, not the repository's), must exist in the repository (at the root, or below some directory, so a crate
#   README's `src/lib.rs` counts); placeholders (`<kind>`, `$VAR`, `~`, `*`, `...`) and
#   absolute paths are not checked;
# - commands: `dist <subcommand>` (in backticks or code blocks) must be a subcommand of
#   examples/dist/cli.rs; `cargo ... --example/--test/--bench NAME` must name a target.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import os, re, subprocess, sys

docs = ["README.md"] + sorted(
    os.path.join("docs", f) for f in os.listdir("docs") if f.endswith(".md"))

skip_dirs = {".git", "target", "fuzz/target", "fuzz/artifacts"}
files, dirs = set(), set()
for root, ds, fs in os.walk("."):
    rel = os.path.relpath(root, ".")
    ds[:] = [d for d in ds if os.path.normpath(os.path.join(rel, d)) not in skip_dirs]
    if rel != ".":
        dirs.add(rel + "/")
    for f in fs:
        files.add(os.path.normpath(os.path.join(rel, f)))

fns = set()
for f in files:
    if f.endswith(".rs"):
        with open(f, encoding="utf-8", errors="replace") as fh:
            fns.update(re.findall(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)", fh.read()))

def kebab(name):
    return re.sub(r"(?<!^)([A-Z])", r"-\1", name).lower()

cli = open("examples/dist/cli.rs", encoding="utf-8").read()
subcommands = set()
for enum in ("Command", "ImagesCommand"):
    m = re.search(r"pub enum " + enum + r" \{(.*?)\n\}", cli, re.S)
    if m:
        subcommands.update(kebab(v) for v in re.findall(r"^    ([A-Z][A-Za-z]*)\b", m.group(1), re.M))
# Global flags, and those that take a value, so `dist --root DIR pull` finds `pull`; any
# other flag means the text is not a dist command line (`dist --no-default-features`).
value_flags = {"--" + f.replace("_", "-") for f in re.findall(
    r"value_name = [^\n]*\n\s*pub ([a-z_]+): Option", cli)}
m = re.search(r"pub struct Global \{(.*?)\n\}", cli, re.S)
global_flags = {"-v", "-vv", "-vvv"} | {"--" + f.replace("_", "-") for f in re.findall(
    r"^\s*pub ([a-z_]+):", m.group(1) if m else "", re.M)}

def target_exists(kind, name):
    if kind == "example":
        return f"examples/{name}.rs" in files or f"examples/{name}/main.rs" in files
    if kind == "test":
        return any(f.endswith(f"tests/{name}.rs") or f.endswith(f"tests/{name}/main.rs") for f in files)
    return any(f.endswith(f"benches/{name}.rs") for f in files)

external_files = {"hosts.toml", "config.json", "index.json", "manifest.json", "oci-layout"}
path_ext = re.compile(r"\.(rs|md|sh|toml|py|json|ya?ml|lock|txt)(:\d+(-\d+)?)?$")
test_name = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+){3,}$")
problems = []
checked = {"test": 0, "path": 0, "command": 0}

def check_path(doc, n, p):
    checked["path"] += 1
    p = re.sub(r":\d+(-\d+)?$", "", p)
    if p.startswith("./"):
        p = p[2:]
    norm = os.path.normpath(p) + ("/" if p.endswith("/") else "")
    if norm in files or norm in dirs:
        return
    if any(f.endswith("/" + norm) for f in files) or any(d.endswith("/" + norm) for d in dirs):
        return
    problems.append(f"{doc}:{n}: path '{p}'")

def check_command(doc, n, text):
    # `dist` as a command: at the start, after a pipe, `$(`, `;`, `&&` or `xargs ...`.
    for m in re.finditer(r"(?:^|[|;(&$]\s*|xargs(?:\s+-\S+)*\s+)(?:\$DIST|dist)((?:\s+[^\s|;&)`]+)*)", text):
        words = m.group(1).split()
        i = 0
        while i < len(words) and words[i].startswith("-"):
            if words[i].split("=")[0] not in global_flags:
                break
            i += 2 if words[i] in value_flags else 1
        if i >= len(words) or words[i].startswith("-"):
            continue
        sub = words[i].strip("`'\"")
        for part in sub.split("/"):
            checked["command"] += 1
            if re.fullmatch(r"[a-z][a-z-]*", part) and part not in subcommands:
                problems.append(f"{doc}:{n}: command 'dist {part}'")
    for kind, name in re.findall(r"--(example|test|bench)[ =]([A-Za-z0-9_-]+)", text):
        if not target_exists(kind, name):
            problems.append(f"{doc}:{n}: cargo --{kind} '{name}'")

for doc in docs:
    fence = False
    with open(doc, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.lstrip().startswith("```"):
                fence = not fence
                continue
            if fence:
                check_command(doc, n, line.strip().lstrip("$ ").strip())
                continue
            for code in re.findall(r"`([^`]+)`", line):
                code = code.strip()
                check_command(doc, n, code)
                word = code[:-2] if code.endswith("()") else code
                if test_name.match(word):
                    checked["test"] += 1
                    if word not in fns:
                        problems.append(f"{doc}:{n}: test '{word}'")
                    continue
                if " " in code or "://" in code or re.search(r"[<>$~*{}…]|\.\.\.|::", code):
                    continue
                if code.startswith(("/", "-")):
                    continue
                # Files of other tools and formats, named for what they are, not a path here.
                if code in external_files:
                    continue
                if path_ext.search(code) or (code.endswith("/") and "/" in code[:-1]):
                    check_path(doc, n, code)

for p in problems:
    print(p)
summary = ", ".join(f"{v} {k}s" for k, v in checked.items())
if problems:
    print(f"check-docs: {len(problems)} stale mention(s); {summary} checked", file=sys.stderr)
    sys.exit(1)
print(f"check-docs: ok, {summary} checked in {', '.join(docs)}")
PY
