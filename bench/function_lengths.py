#!/usr/bin/env python3
"""Lines per C++ function (from the line naming it to its closing brace), longest first.

    python3 bench/function_lengths.py [--top N] [--over N] PATH...   (files or directories)

Brace counting on text with comments, strings and preprocessor lines blanked: a `{` at namespace or
class scope whose preceding text ends in `) [qualifiers] [: initialisers]` opens a function; lambdas
and local classes count towards the function holding them. Exit status 1 when --over finds any."""
import argparse
import os
import re
import sys

KEYWORDS = {"if", "for", "while", "switch", "catch", "return", "sizeof", "decltype", "alignof", "defined"}


def blank(text):
    """Comments, string/char literals and preprocessor lines replaced by spaces (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i) or (c == "#" and text[:i].rstrip(" \t").endswith(("\n", "")) and
                                         (i == 0 or text[text.rfind("\n", 0, i) + 1:i].strip() == "")):
            j = i
            while j < n and text[j] != "\n":  # a preprocessor line may continue with a backslash
                j = j + 2 if text[j] == "\\" and j + 1 < n else j + 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2:j]))
            i = j
        elif c in "\"'" and not (c == "'" and i > 0 and text[i - 1].isalnum()):  # 1'000 digit separators
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def function_name(head):
    """The function's name if `head` (text before a `{`) is a function definition, else None."""
    h = head.strip()
    h = re.sub(r"\s*(->\s*[\w:<>,\s*&]+)$", "", h)  # trailing return type
    h = re.sub(r"(\s*\b(const|override|final|noexcept|mutable|volatile|&|&&)\b)*\s*$", "", h)
    # constructor initialiser list: cut at the ':' after the parameter list's ')'
    depth, close = 0, -1
    for k, ch in enumerate(h):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                close = k
                break
    if close < 0:
        return None
    rest = h[close + 1:].strip()
    rest = re.sub(r"^(\b(const|override|final|noexcept|mutable|volatile)\b\s*)*", "", rest)
    if rest and not rest.startswith(":") and not h.endswith(")"):
        return None
    before = h[:h.index("(")].rstrip()
    m = re.search(r"([~\w:]+|operator\s*\S+)$", before)
    if not m or "=" in before.split("(")[0].split()[-1:]:
        return None
    name = m.group(1)
    if name.split("::")[-1] in KEYWORDS or before.endswith("]"):
        return None
    return name


def functions(path):
    text = blank(open(path, encoding="utf-8", errors="replace").read())
    stack, head_start, out = [], 0, []  # stack of (kind, name, line)
    for i, ch in enumerate(text):
        if ch in ";":
            if not stack or stack[-1][0] in ("namespace", "class"):
                head_start = i + 1
        elif ch == "{":
            outer = not stack or stack[-1][0] in ("namespace", "class")
            head = text[head_start:i]
            kind, name = "block", None
            if outer:
                if re.search(r"\bnamespace\b|\bextern\s*$", head) or head.strip() == "":
                    kind = "namespace"
                elif re.search(r"\b(class|struct|union|enum)\b[^()]*$", head):
                    kind = "class"
                elif (name := function_name(head)) is not None:
                    kind = "function"
                else:
                    kind = "other"
            line = text.count("\n", 0, head_start + len(head) - len(head.lstrip())) + 1
            if kind == "function" and name:
                line = text.count("\n", 0, head_start + head.find(name.split("::")[0])) + 1
            stack.append((kind, name, line))
            head_start = i + 1
        elif ch == "}":
            if not stack:
                continue
            kind, name, line = stack.pop()
            if kind == "function":
                out.append((text.count("\n", 0, i) + 1 - line + 1, path, line, name))
            if not stack or stack[-1][0] in ("namespace", "class"):
                head_start = i + 1
    return out


def sources(paths):
    for p in paths:
        if os.path.isdir(p):
            for root, _, files in os.walk(p):
                for f in sorted(files):
                    if f.endswith((".cpp", ".hpp", ".h", ".cc")):
                        yield os.path.join(root, f)
        else:
            yield p


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--over", type=int, default=None, help="list every function longer than this and exit 1 if any")
    a = ap.parse_args()
    found = sorted((f for p in sources(a.paths) for f in functions(p)), key=lambda f: (-f[0], f[1], f[2]))
    shown = [f for f in found if f[0] > a.over] if a.over is not None else found[: a.top]
    for n, path, line, name in shown:
        print(f"{n:5d}  {path}:{line}  {name}")
    return 1 if a.over is not None and shown else 0


if __name__ == "__main__":
    sys.exit(main())
