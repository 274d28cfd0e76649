"""The README's figures and promises that code decides, checked against that code, so the
README cannot drift from what a user gets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasks.config import SECTIONS, PipelineConfig, param_schemas, unknown_params

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def configuration_table() -> dict[str, str]:
    """The README's Params table: section -> the cell listing its Params."""
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([^|]+) \| ([^|]+) \|$", section, flags=re.MULTILINE)
    return {name.strip(): cell for name, cell in rows if name.strip() not in ("section", "---")}


def test_the_readme_lists_every_param_in_its_form_section():
    table = configuration_table()
    assert list(table) == list(SECTIONS)
    for name, schema in param_schemas().items():
        assert f"`{name}`" in table[schema["section"]], name


def readme_defaults() -> list[tuple[str, str]]:
    """(Param, the default the README states in parentheses), for plain numbers and words."""
    cells = " ".join(configuration_table().values())
    return re.findall(r"`(\w+)` \(([\w.]+)\)", cells)


@pytest.mark.parametrize(("name", "stated"), readme_defaults())
def test_the_readmes_defaults_are_the_configs(name, stated):
    default = getattr(PipelineConfig(), name)
    spoken = {True: "on", False: "off"}.get(default, default) if isinstance(default, bool) else default
    if isinstance(default, float):
        assert float(stated) == default, name
    else:
        assert stated == str(spoken), name


def test_the_readme_states_enough_defaults_to_be_worth_checking():
    assert len(readme_defaults()) >= 12


def test_the_misspelt_key_message_is_the_one_users_get():
    quoted = re.search(r"\(`(unknown Param imagesize; did you mean\s+image_size\?)`\)", README)
    assert quoted, "the README no longer quotes the message"
    message = " ".join(quoted.group(1).split())
    assert unknown_params(["imagesize"], known=list(param_schemas())).startswith(message)


def test_the_demo_uploads_as_many_images_as_the_readme_says():
    from sklearn.datasets import load_digits

    stated = re.search(r"uploads ([\d,]+) demo images", README)
    assert stated and int(stated.group(1).replace(",", "")) == len(load_digits().images)


def test_ci_runs_exactly_make_test():
    assert "`.ci/run` runs exactly `make test`" in README
    commands = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "set ", "cd "))
    ]
    assert commands == ["make test"]


def test_the_performance_ratios_are_the_benchmarks_recorded_figures():
    performance = (ROOT / "docs" / "performance.md").read_text()
    section = README.split("## Performance", 1)[1].split("\n## ", 1)[0]
    ratios = re.findall(r"\| (\d+\.\d+x(?: / \d+\.\d+x)?)", section)
    assert len(ratios) >= 4
    for cell in ratios:
        for ratio in cell.split(" / "):
            assert ratio in performance, ratio
