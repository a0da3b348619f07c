"""requirements.lock is installable as the Dockerfile installs it
(`pip install -r requirements.lock`), checked offline.

A clean-venv install against the lock downloads about 2 GB and takes minutes,
too slow for `make test`. What such an install would reject is checked here
from the installed packages' metadata instead: every requirement of
requirements.in and, transitively, of every locked package (with the extras
asked for, markers evaluated for this Python 3.10 on Linux) names a package
that is in the lock at a version the requirement allows. The installed
versions must be the locked ones, so the metadata read is the locked
releases'. What this does not show: that each pinned wheel still exists on
PyPI for the image's platform (only a real install or `docker build` shows
that).
"""

from collections import defaultdict
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[2]


def requirement_lines(path: Path) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def lock_pins(path: Path = REPO_ROOT / "requirements.lock") -> dict[str, Version]:
    pins = {}
    for line in requirement_lines(path):
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", line
        pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def unmet_requirements(direct: list[Requirement], pins: dict[str, Version],
                       requires=lambda name: metadata.distribution(name).requires) -> list[str]:
    """What pip's resolver would reject installing exactly `pins` for `direct`."""
    problems = []
    extras_seen: dict[str, set[str]] = defaultdict(set)
    visited = set()
    queue = [("requirements.in", r) for r in direct]
    while queue:
        who, requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{who} needs {requirement}: {name} is not in the lock")
            continue
        if not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{who} needs {requirement}: the lock has {name}=={pins[name]}")
        new_extras = set(requirement.extras) - extras_seen[name]
        if name in visited and not new_extras:
            continue
        visited.add(name)
        extras_seen[name] |= new_extras
        for line in requires(name) or []:
            dependency = Requirement(line)
            if dependency.marker is not None and not any(
                    dependency.marker.evaluate({"extra": extra})
                    for extra in {""} | extras_seen[name]):
                continue
            queue.append((f"{name}=={pins[name]}", dependency))
    return problems


def test_installed_packages_are_the_locked_versions():
    wrong = []
    for name, version in lock_pins().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}: not installed")
            continue
        if installed != version:
            wrong.append(f"{name}: {installed} installed, {version} locked")
    assert not wrong, "the venv is not the lock (make venv reinstalls it):\n" + "\n".join(wrong)


def test_the_lock_satisfies_every_requirement_it_brings_in():
    direct = [Requirement(line) for line in requirement_lines(REPO_ROOT / "requirements.in")]
    problems = unmet_requirements(direct, lock_pins())
    assert not problems, "\n".join(problems)


def test_a_missing_or_conflicting_pin_is_reported():
    """The check itself: a dependency left out of the lock, and one pinned
    outside what its dependent allows."""
    graph = {"a": ["b>=2", "c; extra == 'x'"], "b": [], "c": []}
    pins = {"a": Version("1"), "b": Version("1")}
    problems = unmet_requirements([Requirement("a[x]")], pins, requires=graph.get)
    assert sorted(problems) == ["a==1 needs b>=2: the lock has b==1",
                                "a==1 needs c; extra == \"x\": c is not in the lock"]
    assert unmet_requirements([Requirement("a")], {**pins, "b": Version("2")},
                              requires=graph.get) == []
