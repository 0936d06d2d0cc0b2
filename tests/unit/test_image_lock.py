"""The Docker image installs exactly the versions in constraints.txt, on a pinned base image."""
from __future__ import annotations

import configparser
import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _install_requires() -> list[Requirement]:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    lines = [line.strip() for line in setup["options"]["install_requires"].splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


def test_the_base_image_is_pinned_to_an_exact_tag_or_digest():
    base = re.search(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE).group(1)

    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?|python@sha256:[0-9a-f]{64}", base)


def test_the_dockerfile_installs_everything_under_the_lock():
    installs = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if "pip install" in line]

    assert installs
    assert all("-c constraints.txt" in line for line in installs)


def test_the_lock_satisfies_every_range_of_setup_cfg():
    pins = _pins()

    for requirement in _install_requires():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in constraints.txt: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside setup.cfg's {requirement}: run make lock"
        )


def test_the_lock_pins_every_package_the_requirements_pull_in():
    pins, missing, seen = _pins(), set(), set()
    todo = [(requirement, frozenset(requirement.extras)) for requirement in _install_requires()]
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        if name not in pins:
            missing.add(name)
        for dependency in metadata.requires(requirement.name) or []:
            dependency = Requirement(dependency)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if dependency.marker is None or any(dependency.marker.evaluate(env) for env in environments):
                todo.append((dependency, frozenset(dependency.extras)))

    assert not missing, f"not pinned in constraints.txt: {sorted(missing)}; run make lock"
