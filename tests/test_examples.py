"""Every example of the documentation runs.

- **Docstrings.** The ``>>>`` examples of every module of ``keras_sngan`` that
  has some run with the standard library's `doctest` (``ELLIPSIS`` and
  ``NORMALIZE_WHITESPACE``), one test per module, in a temporary directory.
- **README.md and docs/.** Every ```` ```python ```` block of a page runs, in
  page order, in one namespace per page (a block may use what an earlier
  block of the same page defined), in a temporary directory. A failure names
  the page and the line of the block. Other languages (``bash``, ...) are not
  run.
- **Skipped examples are counted and listed.** A Python block whose first line
  is ``# skip`` (``# skip: reason``) and a doctest line marked
  ``# doctest: +SKIP`` do not run; each is reported as one skipped test named
  after its location, so ``pytest -ra`` lists them and the summary counts them.
  Use it only for examples that need minutes.
"""

import doctest
import glob
import importlib
import io
import os
import re
import textwrap
import traceback

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
)
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
                   re.MULTILINE | re.DOTALL)
SKIP_MARK = re.compile(r"^#\s*skip\b", re.IGNORECASE)
DOCTEST_SKIP = re.compile(r"#\s*doctest:.*\+SKIP")


def python_blocks(page):
    """``(line, code, skip)`` of each Python block of a page; ``line`` is the block's first code line."""
    with open(os.path.join(ROOT, page), encoding="utf-8") as handle:
        text = handle.read()
    blocks = []
    for match in FENCE.finditer(text):
        if match.group("lang") not in ("python", "py"):
            continue
        code = textwrap.dedent(match.group("code"))
        line = text.count("\n", 0, match.start("code")) + 1
        first = next((c for c in code.splitlines() if c.strip()), "")
        blocks.append((line, code, bool(SKIP_MARK.match(first.strip()))))
    return blocks


def doctest_modules():
    """Dotted names of the package modules whose source holds a ``>>>`` example."""
    names = []
    for path in sorted(glob.glob(os.path.join(ROOT, "keras_sngan", "**", "*.py"), recursive=True)):
        with open(path, encoding="utf-8") as handle:
            if ">>>" not in handle.read():
                continue
        module = os.path.relpath(path, ROOT)[: -len(".py")].replace(os.sep, ".")
        names.append(module[: -len(".__init__")] if module.endswith(".__init__") else module)
    return names


def skipped_examples():
    """``location: first line`` of every example marked to be skipped."""
    found = []
    for page in PAGES:
        for line, code, skip in python_blocks(page):
            if skip:
                found.append(f"{page}:{line}: {code.strip().splitlines()[0]}")
    for module in doctest_modules():
        path = os.path.join(ROOT, *module.split(".")) + ".py"
        if not os.path.exists(path):
            path = os.path.join(ROOT, *module.split("."), "__init__.py")
        with open(path, encoding="utf-8") as handle:
            for number, text in enumerate(handle, 1):
                if DOCTEST_SKIP.search(text):
                    found.append(f"{os.path.relpath(path, ROOT)}:{number}: {text.strip()}")
    return found


@pytest.fixture
def in_tmp_path(tmp_path, monkeypatch):
    """Examples that write files (``layers.csv``, a SavedModel) write them here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


RUNNABLE_PAGES = [page for page in PAGES if any(not skip for _, _, skip in python_blocks(page))]


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_markdown_examples_run(page, in_tmp_path):
    namespace = {"__name__": "__example__"}
    for line, code, skip in python_blocks(page):
        if skip:
            continue
        try:  # padded with newlines so that a traceback's line numbers are the page's
            exec(compile("\n" * (line - 1) + code, os.path.join(ROOT, page), "exec"), namespace)
        except Exception:  # noqa: BLE001 - report any failure with the page and line
            pytest.fail(f"the example at {page}:{line} failed:\n{traceback.format_exc()}", pytrace=False)
        finally:
            keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("module", doctest_modules())
def test_docstring_examples_run(module, in_tmp_path):
    imported = importlib.import_module(module)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    for test in doctest.DocTestFinder().find(imported, module):
        runner.run(test, out=report.write)
    results = runner.summarize(verbose=False)
    assert results.attempted > 0 or skipped_examples(), f"{module}: no example found"
    assert results.failed == 0, f"{module}: {results.failed} docstring example(s) failed:\n{report.getvalue()}"


@pytest.mark.parametrize("location", skipped_examples() or [pytest.param(None, id="none")])
def test_examples_marked_skip_are_listed(location):
    if location is None:
        return  # no example is skipped
    pytest.skip(f"example marked skip (needs minutes): {location}")


def test_pages_have_examples():
    """The runner finds the README's examples (a changed fence syntax must not silently run nothing)."""
    assert sum(not skip for _, _, skip in python_blocks("README.md")) >= 3
    assert len(doctest_modules()) >= 10
