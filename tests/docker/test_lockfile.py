"""requirements.lock: it is current with pyproject.toml, satisfies every declared
dependency, and is what the venv and the trainer image hold (docker/lockfile.py)."""

from __future__ import annotations

import json
import platform
import shutil
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docker"))

import lockfile  # noqa: E402


def locked_here(python_full_version: str = platform.python_version()) -> dict[str, str]:
    """The lock's versions for this interpreter (or that Python), by canonical name."""
    return {
        lockfile.canonical_name(name): version
        for name, version, marker in lockfile.pins()
        if marker is None or lockfile.marker_holds(marker, python_full_version)
    }


def test_the_lock_is_current_with_pyproject():
    assert lockfile.stale_reason() is None


def test_a_changed_dependency_makes_the_lock_stale_and_tool_settings_do_not(tmp_path):
    pyproject, lock = tmp_path / "pyproject.toml", tmp_path / "requirements.lock"
    shutil.copy(lockfile.PYPROJECT, pyproject)
    shutil.copy(lockfile.LOCK, lock)
    text = pyproject.read_text()
    pyproject.write_text(text.replace("line-length = 110", "line-length = 100"))
    assert lockfile.stale_reason(lock, pyproject) is None

    pyproject.write_text(text.replace('"pandas>=2.2"', '"pandas>=2.3"'))
    assert "run `make lock`" in lockfile.stale_reason(lock, pyproject)
    lockfile.stamp(lock, pyproject)
    assert lockfile.stale_reason(lock, pyproject) is None


def test_every_declared_dependency_is_satisfied_by_the_lock():
    project = tomllib.loads(lockfile.PYPROJECT.read_text())["project"]
    declared = project["dependencies"] + [
        requirement for extra in project["optional-dependencies"].values() for requirement in extra
    ]
    locked = locked_here()
    for text in declared:
        requirement = Requirement(text)
        if requirement.name == project["name"]:
            continue  # the project's own extras, whose contents are checked here too
        version = locked.get(lockfile.canonical_name(requirement.name))
        assert version is not None, f"{requirement.name} is not in the lock"
        assert requirement.specifier.contains(version, prereleases=True), (text, version)


def test_the_venv_holds_the_locked_versions():
    installed = {
        lockfile.canonical_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
    }
    drifted = {
        name: (installed.get(name), version)
        for name, version in locked_here().items()
        if installed.get(name) != version
    }
    assert drifted == {}, "(installed, locked); run `make install`"


def test_constraints_drop_hashes_and_can_defer_to_what_is_installed(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "pytest==0.0.1 \\\n    --hash=sha256:00\n"
        "soupsieve==2.10 ; python_full_version < '3.11.5' \\\n    --hash=sha256:11\n"
        "soupsieve==4.1.3 ; python_full_version >= '3.11.5' \\\n    --hash=sha256:22\n"
    )
    served = lockfile.constraints(lock)
    assert "hash" not in served and served.splitlines()[0] == "pytest==0.0.1"
    installed_wins = lockfile.constraints(lock, installed_wins=True)
    assert installed_wins.splitlines()[0] == f"pytest=={metadata.version('pytest')}"
    for python, soupsieve in (("3.11.2", "2.10"), ("3.11.9", "4.1.3")):
        decided = lockfile.constraints(lock, python_full_version=python).splitlines()
        assert decided == ["pytest==0.0.1", f"soupsieve=={soupsieve}"]


def test_the_trainer_image_holds_the_locked_versions(docker_client, trainer_image):
    listed = docker_client.containers.run(
        trainer_image, entrypoint=["pip", "list", "--format", "json"], remove=True
    )
    in_image = {lockfile.canonical_name(item["name"]): item["version"] for item in json.loads(listed)}
    locked = locked_here("3.11.2")
    assert {"tensorflow-cpu", "boto3", "numpy", "keras"} <= in_image.keys()
    drifted = {
        name: (version, locked[name])
        for name, version in in_image.items()
        if name in locked and version != locked[name]
    }
    assert drifted == {}, "(in the image, locked)"


@pytest.mark.parametrize("command", [["check"], ["constraints"]])
def test_the_script_runs_as_the_makefile_and_images_call_it(command, capfd):
    assert lockfile.main(command) == 0
    if command == ["constraints"]:
        assert "tensorflow-cpu==" in capfd.readouterr().out
