"""MkDocs hook: publish the committed figures in ``results/figures`` with the site.

The reproduction pages show the files the pipeline writes, not copies of them:
tables and ``claims.md`` come in through ``pymdownx.snippets`` when the site is
built, and the figures through this hook, which adds every file of
``results/figures`` (and of the long profile's ``results/long/figures``) to
the site at the same path. A page links to
one as ``../results/figures/<name>.png`` (from ``docs/reproduction/``), and
``mkdocs build --strict`` fails if the file is missing.

``docs/changelog.md`` is ``CHANGELOG.md`` of the repository root, with its
links into ``docs/`` made relative to the site.
"""

import os
import re

from mkdocs.structure.files import File

# Sphinx roles in the docstrings (:func:`x`) are shown as plain code (`x`).
SPHINX_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):(?=<code>)")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUBLISHED = ["results/figures", "results/long/figures"]


def on_files(files, config):
    for folder in PUBLISHED:
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            path = f"{folder}/{name}"
            if os.path.isfile(os.path.join(ROOT, path)) and files.get_file_from_path(path) is None:
                files.append(File(path, src_dir=ROOT, dest_dir=config["site_dir"],
                                  use_directory_urls=config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "changelog.md":
        with open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8") as handle:
            return re.sub(r"\]\(docs/", "](", handle.read())
    return markdown


def on_page_content(html, page, config, files):
    return SPHINX_ROLE.sub("", html)
