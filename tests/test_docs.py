"""The documentation builds, and the README agrees with the files it points to.

- `mkdocs build --strict` (what `make docs` runs) into a temporary directory:
  a broken link, a missing page, a snippet whose file is missing, a docstring
  that does not render or an unresolved cross-reference fails it.
- The README stays short, its relative links exist, and its verdict table
  says what ``results/claims.md`` (written by the pipeline) says.
"""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
        return handle.read()


def test_site_builds_in_strict_mode(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]' (part of the test extra)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    for page in ("index.html", "api/layers/index.html", "reproduction/results/index.html", "changelog/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "layers" / "index.html").read_text(encoding="utf-8")
    assert "power_iterations" in api  # the reference is generated from the docstrings
    results = (site / "reproduction" / "results" / "index.html").read_text(encoding="utf-8")
    assert "Verdict:" in results  # results/claims.md is included
    for figure in os.listdir(os.path.join(ROOT, "results", "figures")):
        assert (site / "results" / "figures" / figure).is_file(), figure


def test_readme_is_short_and_its_links_exist():
    readme = _read("README.md")
    assert len(readme.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if "://" not in link]
    assert local, "the README links into docs/"
    missing = [link for link in local if not os.path.exists(os.path.join(ROOT, link))]
    assert not missing, missing


def _verdicts(markdown, header, column=-1):
    """``{claim id: verdict}`` of the first table whose header row starts with ``header`` (verdicts in ``column``)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows[cells[0]] = re.sub(r"\*\*(.*)\*\*", r"\1", cells[column])
    return rows


README_TABLE = "| # | claim of the poster | long profile | holds in | default profile |"


def test_readme_verdicts_match_results_claims():
    """Regenerating results/ (or results/long/) changes claims.md; the README's table must then be updated with it."""
    readme = _read("README.md")
    default = _verdicts(_read(os.path.join("results", "claims.md")), "| # | claim | verdict |", column=2)
    assert _verdicts(readme, README_TABLE, column=4) == default
    long = _read(os.path.join("results", "long", "claims.md"))
    assert _verdicts(readme, README_TABLE, column=2) == _verdicts(long, "| # | claim | verdict |", column=2)
    robust = _verdicts(long, "| # | claim | verdict |", column=4)
    for cid, text in _verdicts(readme, README_TABLE, column=3).items():
        assert text.replace("*", "") == robust[cid].replace("*", ""), cid
