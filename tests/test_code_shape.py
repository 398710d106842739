"""The code's shape, read from its source: the README's layout is the tree, a module of src/
uses only the modules listed above it, and no function is longer than 80 lines but a flat
match. No server is needed."""
import re

import pytest

from conftest import ROOT

SRC = ROOT / "src"
MAX_FUNCTION_LINES = 80
MAX_ARM_LINES = 15


@pytest.fixture(scope="session")
def database_defaults():
    """No server for these: this overrides conftest's session-wide set-up."""


def layout():
    """The README's layout entries under src/, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Layout\n", 1)[1]
    block = section.split("```\n", 2)[1]
    return [line.split()[0] for line in block.splitlines() if line.startswith("src/")]


def top_module(path):
    """`bigquery` for src/bigquery/rest/pages.rs, `sync` for src/sync.rs."""
    return path.relative_to(SRC).parts[0].removesuffix(".rs")


def code_only(text):
    """The text with comments, string and character literals blanked out (newlines kept)."""
    blank = lambda match: re.sub(r"[^\n]", " ", match.group(0))  # noqa: E731
    pattern = re.compile(
        r"//[^\n]*"
        r"|/\*.*?\*/"
        r"|(?<![\w])[bc]?r(?P<hashes>#*)\".*?\"(?P=hashes)"
        r"|(?<![\w])[bc]?\"(?:\\.|[^\"\\])*\""
        r"|'(?:\\.[^']*|[^\\'\n])'",
        re.S,
    )
    return pattern.sub(blank, text)


def without_tests(code):
    """The code without its `#[cfg(test)] mod tests { ... }` block."""
    match = re.search(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod tests\s*\{", code)
    if not match:
        return code
    depth = 0
    for position in range(match.end() - 1, len(code)):
        depth += {"{": 1, "}": -1}.get(code[position], 0)
        if depth == 0:
            return code[:match.start()] + code[position + 1:]
    raise AssertionError("an unclosed tests module")


def module_path(path):
    """["bigquery", "rest", "pages"] for src/bigquery/rest/pages.rs; a mod.rs is its folder."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "mod" else parts


def used_modules(path, code):
    """The top-level modules `code` (in `path`) names: crate::x, crate::{x, y::z}, and
    super::…::x resolved from the file's place."""
    used = set()
    for match in re.finditer(r"\bcrate::(\w+|\{)", code):
        if match.group(1) != "{":
            used.add(match.group(1))
            continue
        depth, items, start = 0, [], match.end()
        for position in range(match.end() - 1, len(code)):
            depth += {"{": 1, "}": -1}.get(code[position], 0)
            if depth == 1 and code[position] == ",":
                items.append(code[start:position])
                start = position + 1
            if depth == 0:
                items.append(code[start:position])
                break
        used.update(re.match(r"\s*(\w*)", item).group(1) for item in items)
    here = module_path(path)
    for match in re.finditer(r"\b((?:super::)+)(\w+)", code):
        up = match.group(1).count("super::")
        if up >= len(here):
            used.add(match.group(2))
    return used - {"", "self"}


def sources():
    return sorted(SRC.rglob("*.rs"))


def test_the_readme_layout_is_the_tree():
    entries = layout()
    assert len(entries) == len(set(entries)), "an entry is listed twice"
    for entry in entries:
        assert (ROOT / entry).exists(), f"the README lists {entry}, which is not in the tree"
    for path in sources():
        name = str(path.relative_to(ROOT))
        assert any(name == entry or (entry.endswith("/") and name.startswith(entry)) for entry in entries), (
            f"{name} is not in the README's layout")
    for path in SRC.rglob("*.sql"):
        beside = [path.with_suffix(".rs"), path.parent / "mod.rs"]
        assert any(p.exists() for p in beside), f"{path} sits beside no module"


def module_order():
    order = []
    for entry in layout():
        module = top_module(ROOT / entry)
        if module not in order and module != "lib":
            order.append(module)
    return order


def test_a_module_uses_only_the_modules_above_it():
    order = module_order()
    declared = set(re.findall(r"^\s*(?:pub )?mod (\w+);", (SRC / "lib.rs").read_text(), re.M))
    assert declared == set(order), "the README's modules are not the crate's"
    rank = {module: index for index, module in enumerate(order)}
    upward = []
    for path in sources():
        module = top_module(path)
        if module == "lib":
            continue
        code = without_tests(code_only(path.read_text()))
        for used in sorted(used_modules(path, code)):
            if used in rank and rank[used] > rank[module]:
                upward.append(f"{path.relative_to(ROOT)} uses {used}, listed below {module}")
    assert upward == []


def functions(path):
    """(name, first line, line count, body is a flat match) of each function with a body."""
    code = code_only(path.read_text())
    for match in re.finditer(r"^[ \t]*(?:pub(?:\([^)]*\))? )?(?:const )?(?:async )?(?:unsafe )?(?:extern\s+)?fn (\w+)", code,
                             re.M):
        position, depth = match.end(), 0
        while position < len(code) and not (code[position] in "{;" and depth <= 0):
            depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(code[position], 0)
            position += 1
        if position >= len(code) or code[position] == ";":
            continue
        body_start, depth = position, 0
        for position in range(body_start, len(code)):
            depth += {"{": 1, "}": -1}.get(code[position], 0)
            if depth == 0:
                break
        first = code.count("\n", 0, match.start()) + 1
        last = code.count("\n", 0, position) + 1
        yield match.group(1), first, last - first + 1, flat_match(code[body_start + 1:position])


def flat_match(body):
    """A body that is one `match` (as its value, or bound and returned) after a few short
    lines, no arm longer than MAX_ARM_LINES: its length is the number of cases, not the
    depth of its logic."""
    lines = [line.strip() for line in body.strip().splitlines()]
    for index, line in enumerate(lines[:4]):
        if re.match(r"(?:let \w+ = |Ok\(|return )?match\b", line):
            rest = lines[index + 1:]
            depth, end, arm_starts = 1, None, []
            for offset, text in enumerate(rest):
                if depth == 1 and "=>" in text:
                    arm_starts.append(offset)
                depth += text.count("{") - text.count("}")
                if depth == 0:
                    end = offset
                    break
            if end is None or len(rest) - end > 3 or not arm_starts:
                return False
            bounds = arm_starts + [end]
            return all(after - before <= MAX_ARM_LINES for before, after in zip(bounds, bounds[1:]))
    return False


def test_no_function_is_longer_than_80_lines_but_a_flat_match():
    long = [f"{path.relative_to(ROOT)}:{first} {name} ({lines} lines)"
            for path in sources()
            for name, first, lines, flat in functions(path)
            if lines > MAX_FUNCTION_LINES and not flat]
    assert long == []


@pytest.mark.parametrize("body, flat", [
    ("let kind = 1;\nlet text = match kind {\n 1 => a,\n _ => b,\n};\nOk(text)", True),
    ("match kind {\n 1 => a,\n}", True),
    ("let a = 1;\nif a {\n match a {\n 1 => b,\n }\n}\nrest();\nmore();\nagain();\nstill();", False),
    ("run();\nrun();\nrun();\nrun();\nmatch x {\n}", False),
    ("match () {\n () => {\n" + "work();\n" * 20 + " }\n}", False),
])
def test_the_flat_match_rule_tells_them_apart(body, flat):
    assert flat_match(body) == flat
