"""The Dockerfile and compose file, read (no Docker engine here): the export stage copies only what the
export needs, and that is enough for it; the app runs as a user, with a health check; every service
of compose has a health check and a restart policy."""
from __future__ import annotations

import shutil
import subprocess
import sys

import yaml

from tests.conftest import ROOT


def stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), stage by stage."""
    lines = ROOT.joinpath("Dockerfile").read_text().replace("\\\n", " ").splitlines()
    found: list[list[str]] = []
    for line in (ln.strip() for ln in lines):
        if line.startswith("FROM "):
            found.append([])
        if line and not line.startswith("#") and found:
            found[-1].append(line)
    return found


def test_the_export_stage_copies_only_what_the_export_reads_and_that_is_enough(tmp_path):
    export = stages()[0]
    copied = [line.split()[1:] for line in export if line.startswith("COPY ")]
    for *sources, target in copied:
        for source in map(ROOT.joinpath, sources):
            if source.is_dir():
                shutil.copytree(source, tmp_path / target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
                continue
            destination = tmp_path / target / source.name if target.endswith("/") else tmp_path / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, destination)
    assert not (tmp_path / "searchcore" / "web").exists() and not (tmp_path / "searchcore" / "engine.py").exists()
    assert any("python -m searchcore.encoding.build --precision int8" in line for line in export)
    check = ("import models.export, models.quantize, searchcore.encoding.build\n"
             "import sys; sys.exit(searchcore.encoding.build.main(['--help']))")
    done = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0 and "--precision" in done.stdout, done.stderr[-2000:]


def test_the_app_runs_as_a_user_with_a_health_check_and_every_service_restarts():
    runtime = stages()[-1]
    assert any(line.startswith("USER ") and line.split()[1] != "root" for line in runtime)
    assert any(line.startswith("HEALTHCHECK ") for line in runtime)
    services = yaml.safe_load(ROOT.joinpath("compose.yaml").read_text())["services"]
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        assert "healthcheck" in service or name == "app", name  # the app's is the image's HEALTHCHECK
    assert services["milvus"]["depends_on"] == {"etcd": {"condition": "service_healthy"},
                                                "minio": {"condition": "service_healthy"}}
