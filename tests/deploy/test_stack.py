"""deploy/: the compose file, the Helm chart and the Containerfile, validated without a cluster.

No helm binary or container registry is available where this runs: the chart is checked as
YAML with its template actions blanked out, every ``.Values`` path it uses must exist in
values.yaml, and every chipreg command line in the compose file and the chart must parse with
chipreg's own argument parser. docs/DEPLOY.md says what was built and run for real.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from registry.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "chipreg"
ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


def _parses(args: list[str]) -> None:
    parsed = build_parser(args).parse_args(args)
    assert parsed.func is not None, args


def test_compose_services_and_their_commands() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services: dict[str, Any] = compose["services"]
    assert set(services) == {"postgres", "migrate", "registry", "verifier", "witness", "agent"}
    for name, service in services.items():
        if name == "postgres":
            continue
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        command = [str(part) for part in service["command"]]
        # ${VAR:-...} stands for a value given at deploy time.
        _parses([part if not part.startswith("${") else "x" for part in command])
    assert services["verifier"]["command"] == ["verify", "--follow"]
    assert services["registry"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert "log_key" in compose["secrets"]


def _values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def test_chart_metadata_and_values() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "chipreg"
    values = _values()
    assert values["api"]["replicas"] >= 2
    assert values["verifier"]["replicas"] == 1
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert set(values["logKey"]) == {"existingSecret", "value"}


def _templates() -> list[Path]:
    return sorted((CHART / "templates").glob("*.yaml"))


def test_every_values_path_a_template_uses_exists() -> None:
    values = _values()
    used = set()
    for path in [*_templates(), CHART / "templates" / "_helpers.tpl"]:
        used |= set(re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", path.read_text()))
    assert used
    for dotted in used:
        node: Any = values
        for key in dotted.strip(".").split("."):
            assert isinstance(node, dict) and key in node, dotted
            node = node[key]


@pytest.mark.parametrize("template", _templates(), ids=lambda p: p.name)
def test_template_is_yaml_with_balanced_actions(template: Path) -> None:
    text = template.read_text()
    actions = ACTION.findall(text)
    opened = sum(1 for a in actions if re.match(r"(if|range|define|with)\b", a))
    assert opened == sum(1 for a in actions if a == "end"), template.name
    # Lines that are only an action (control flow, includes) go; inline ones become a scalar.
    lines = [ln for ln in text.splitlines() if not re.fullmatch(r"\s*\{\{.*\}\}\s*", ln)]
    doc = yaml.safe_load(ACTION.sub("PLACEHOLDER", "\n".join(lines)))
    assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]
    pod = doc.get("spec", {}).get("template", {}).get("spec")
    if pod:
        for container in pod["containers"]:
            args = [a if "PLACEHOLDER" not in a else "1" for a in container["args"]]
            _parses(args)
            assert container["securityContext"] is None  # filled from values (toYaml)
        assert "securityContext" in pod


def test_chart_wires_the_log_key_secret_and_one_verifier() -> None:
    verifier = (CHART / "templates" / "verifier-deployment.yaml").read_text()
    assert "type: Recreate" in verifier and ".Values.verifier.replicas" in verifier
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert "CHIPREG_LOG_KEY_FILE" in helpers and "secretKeyRef" in helpers
    secret = (CHART / "templates" / "secret.yaml").read_text()
    assert "helm.sh/resource-policy: keep" in secret


def test_containerfile_runs_as_a_non_root_user_from_local_wheels() -> None:
    text = (ROOT / "deploy" / "container" / "Containerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and all(not u.startswith(("0", "root")) for u in users)
    assert "--no-index" in text and "--find-links /tmp/wheels" in text
    assert re.search(r'^ENTRYPOINT \["chipreg"\]', text, flags=re.MULTILINE)
