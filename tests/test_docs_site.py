"""The documentation site builds, with no broken link or anchor, and what it says holds.

``mkdocs.yml`` turns every mkdocs validation to ``warn``, so ``mkdocs build --strict`` fails
on a link to a page that does not exist, an anchor no heading makes, a page left out of the
nav, or a link mkdocs cannot resolve. External links cannot be fetched here: they are only
checked to be well-formed. docs/monitoring.md's metric names are checked against the
metrics the manager serves, and its alert rules against those names.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONFIG = ROOT / "mkdocs.yml"

#: A well-formed external link: https, a host with a dot, an optional port and path.
EXTERNAL = re.compile(r"https://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:\d+)?([/?#]\S*)?")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
#: Targets of inline links ``[text](target)``, autolinks ``<target>`` and definitions.
_TARGETS = (re.compile(r"\]\(\s*<?([^)\s>]+)"), re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]+)>"),
            re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE))
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(site)],
        cwd=config.parent, capture_output=True, text=True, timeout=300, check=False)


def _built_as(source: Path, docs: Path, site: Path) -> Path:
    """Where mkdocs (``use_directory_urls``) writes a file of the docs folder."""
    relative = source.relative_to(docs)
    if source.suffix != ".md":
        return site / relative
    if relative.stem in ("index", "README"):
        return site / relative.parent / "index.html"
    return site / relative.with_suffix("") / "index.html"


def test_the_site_builds_strictly_with_every_page(tmp_path: Path) -> None:
    """No broken link, anchor or omitted page; every page and file of docs/ is in the site."""
    site = tmp_path / "site"
    built = _build(CONFIG, site)
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stdout}{built.stderr}"
    sources = [path for path in DOCS.rglob("*") if path.is_file()
               and not any(part.startswith(".") for part in path.relative_to(DOCS).parts)]
    assert any(path.suffix == ".md" for path in sources)
    missing = [str(path.relative_to(DOCS)) for path in sources
               if not _built_as(path, DOCS, site).is_file()]
    assert missing == [], f"not in the site: {missing}"


def test_the_strict_build_fails_on_a_broken_link_anchor_or_omitted_page(tmp_path: Path) -> None:
    """The check bites: a link to no page, an anchor no heading makes, a page not in the nav."""
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(CONFIG, tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "index.md"
    page.write_text(page.read_text(encoding="utf-8")
                    + "\n[x](nowhere.md) and [y](operator.md#no-such-heading)\n",
                    encoding="utf-8")
    (tmp_path / "docs" / "orphan.md").write_text("# Orphan\n", encoding="utf-8")
    built = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    output = built.stdout + built.stderr
    assert built.returncode != 0, output
    for name in ("nowhere.md", "#no-such-heading", "orphan.md"):
        assert name in output, (name, output)


def external_links(text: str) -> list[str]:
    """The targets with a scheme (http:, https:, mailto:…) of a page's links, code left out."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", text))
    return [target for pattern in _TARGETS for target in pattern.findall(text)
            if _SCHEME.match(target)]


@pytest.mark.parametrize(("link", "good"), [
    ("https://prometheus.io/docs/prometheus/latest/", True),
    ("https://example.org", True),
    ("https://example.org:8443/a?b#c", True),
    ("http://example.org/", False),
    ("https:///path", False),
    ("https://localhost/", False),
    ("https://exa mple.org/", False),
    ("ftp://example.org/", False),
])
def test_the_external_link_pattern(link: str, good: bool) -> None:
    """The pattern of the next test: https, and a host."""
    assert (EXTERNAL.fullmatch(link) is not None) is good


def test_external_links_are_well_formed() -> None:
    """Every external link of docs/*.md is https://host… (they cannot be fetched here)."""
    assert external_links("[a](https://example.org/x) `[b](http://code)` <http://auto.example>\n"
                          "[c]: http://ref.example.org\n[d](page.md#x)\n") == [
        "https://example.org/x", "http://auto.example", "http://ref.example.org"]
    bad = {f"{path.relative_to(DOCS)}: {link}"
           for path in DOCS.rglob("*.md")
           for link in external_links(path.read_text(encoding="utf-8"))
           if not EXTERNAL.fullmatch(link)}
    assert bad == set()


# --- docs/monitoring.md against the metrics the manager serves -------------------------------

def _table_rows(text: str, first_column: str) -> list[list[str]]:
    """The rows of the Markdown table whose header's first cell is ``first_column``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("|") and line.strip("| ").split(" |")[0] == first_column)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _documented_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """docs/monitoring.md's metrics: name → (type, label names)."""
    text = (DOCS / "monitoring.md").read_text(encoding="utf-8")
    return {name.strip("`"): (kind, frozenset(re.findall(r"`(\w+)`", labels)))
            for name, kind, labels, _ in _table_rows(text, "metric")}


def test_monitoring_lists_exactly_the_metrics_the_manager_serves() -> None:
    """Names, types and label names of the table are those of `ManagerMetrics`, both ways."""
    metrics = pytest.importorskip("efi_job_manager.metrics")
    from prometheus_client.metrics import MetricWrapperBase

    documented = _documented_metrics()
    served = metrics.ManagerMetrics("0.0.0")
    for value in vars(served).values():  # give each labelled metric a child with its labels
        if isinstance(value, MetricWrapperBase):
            family = value.describe()[0]
            name = family.name + ("_total" if family.type == "counter" else "")
            labels = documented.get(name, ("", frozenset()))[1]
            if labels:
                value.labels(**dict.fromkeys(labels, "x"))
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for family in served.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {label for sample in family.samples for label in sample.labels} - {"le"}
        found[name] = (family.type, frozenset(labels))
    assert found == documented


def test_monitoring_lists_every_failure_cause() -> None:
    """The causes of docs/monitoring.md are `FailureCause`'s values."""
    metrics = pytest.importorskip("efi_job_manager.metrics")
    text = (DOCS / "monitoring.md").read_text(encoding="utf-8")
    documented = {row[0].strip("`") for row in _table_rows(text, "cause")}
    assert documented == {cause.value for cause in metrics.FailureCause}


def test_the_alert_rules_are_yaml_and_name_documented_metrics() -> None:
    """The rules file parses, each rule has a name and an expression, on metrics that exist."""
    text = (DOCS / "monitoring.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)]
    rules = [rule for block in blocks for group in block.get("groups", [])
             for rule in group["rules"]]
    assert len(rules) >= 8
    documented = _documented_metrics()
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["alert"].startswith("EfiJobManager"), rule
        for name in re.findall(r"\befi_job_manager_\w+", rule["expr"]):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert name in documented or (documented.get(base, ("",))[0] == "histogram"), (
                rule["alert"], name)
