"""README.md and docs/*.md: every relative link and image resolves, every #anchor names a heading of its target
file (GitHub's slugs), and README stays a five-minute read (≤ 300 lines)."""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 300

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target "title")
HTML_SRC = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)
HTML_ID = re.compile(r"<[a-z]+\b[^>]*?\b(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)


def prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, inline code spans blanked (links in code are not links)."""
    lines, fence = [], None
    for line in text.split("\n"):
        marker = re.match(r"\s*(```+|~~~+)", line)
        if fence is None and marker:
            fence = marker.group(1)[0] * 3
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            lines.append(re.sub(r"(`+)(?:(?!\1).)+?\1", "``", line))
            continue
        lines.append("")  # keeps line numbers
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation but '-' and '_' dropped, spaces → '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = re.sub(r"<[^>]+>", "", text).replace("*", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, seen, fence = set(), {}, None
    for line in path.read_text().split("\n"):
        marker = re.match(r"\s*(```+|~~~+)", line)
        if fence is None and marker:
            fence = marker.group(1)[0] * 3
            continue
        if fence is not None:
            fence = None if line.strip().startswith(fence) else fence
            continue
        if heading := re.match(r" {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line):
            base = slug(heading.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")  # GitHub numbers repeated headings
        found.update(HTML_ID.findall(line))
    return found


def links(path: Path) -> list[tuple[int, str]]:
    return [(number, target) for number, line in enumerate(prose(path.read_text()), 1)
            for target in LINK.findall(line) + HTML_SRC.findall(line)]


def test_slugs_follow_github():
    assert slug("Earlier study (rounds 1–2, n = 2)") == "earlier-study-rounds-12-n--2"
    assert slug("Gradient modes: memory and speed") == "gradient-modes-memory-and-speed"
    assert slug("Before a run: `--dry-run`") == "before-a-run---dry-run"
    assert slug("ZCA whitening (`--zca`)") == "zca-whitening---zca"
    assert slug("Running on many GPUs / machines") == "running-on-many-gpus--machines"
    assert slug("snake_case and [a link](x.md)") == "snake_case-and-a-link"


def test_the_checker_sees_links_and_skips_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("see [a](docs/a.md#b) and ![i](docs/i.png)\n`[not](a link)`\n```bash\n[no](x.md)\n```\n[c](#d)\n"
                    "# Top\n## Top\n")
    assert links(page) == [(1, "docs/a.md#b"), (1, "docs/i.png"), (6, "#d")]
    assert anchors(page) == {"top", "top-1"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for number, target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("//"):
            continue  # https:, mailto: … are not checked offline
        file, _, anchor = target.partition("#")
        path = (page.parent / unquote(file)).resolve() if file else page
        where = f"{page.relative_to(ROOT)}:{number}: {target}"
        if not path.exists():
            broken.append(f"{where}: no file {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        elif not path.is_relative_to(ROOT):
            broken.append(f"{where}: points outside the repository")
        elif anchor and (path.suffix != ".md" or unquote(anchor) not in anchors(path)):
            broken.append(f"{where}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_linked_from_readme():
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in links(README)}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/*.md (≤ {README_MAX_LINES})"
