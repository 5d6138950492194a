"""Checks of the deployment files that need no Docker engine and no cluster.

Run by deploy/validate.sh, which installs the tools (deploy/validate/requirements*.txt) and runs
hadolint and `docker compose config` itself. Subcommands:

  build-context           every file the image build needs is COPY'd and not .dockerignore'd
  compose RESOLVED.yml    the gateway's environment in the resolved compose file is a valid
                          configuration (seedance-gateway check-config)
  helm CHART_DIR          helm lint; render with the defaults and with ci/*-values.yaml;
                          Kubernetes schema validation (strict); the chart's promises (probes,
                          security context, drain time, scrape annotations, selectors); the
                          rendered config.toml through check-config

`--gateway-bin PATH` names a built seedance-gateway for the check-config steps; without it
they are skipped with a notice. Exits non-zero when anything fails.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# Kubernetes versions whose schemas the rendered chart must satisfy: the oldest the chart
# supports (Chart.yaml kubeVersion) that kubernetes-validate ships, and the newest it ships.
KUBE_VERSIONS = ("1.25.0", "latest")
PROVIDERS = ("seedance_it", "apiframe", "aigateway", "seedanceapi", "aimlapi")

failures: list[str] = []


def ok(message: str) -> None:
    print(f"  ok    {message}")


def fail(message: str) -> None:
    print(f"  FAIL  {message}")
    failures.append(message)


def check(condition: bool, message: str) -> None:
    (ok if condition else fail)(message)


# ---- image build context ------------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, str]]:
    path = ROOT / ".dockerignore"
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((negated, line.lstrip("!").strip("/")))
    return patterns


def ignored(relative: str, patterns: list[tuple[bool, str]]) -> bool:
    """Whether Docker would leave `relative` (or a directory above it) out of the context."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negated, pattern in patterns:
        for candidate in candidates:
            matched = fnmatch.fnmatchcase(candidate, pattern)
            if not matched and pattern.startswith("**/"):
                tail = pattern[3:]
                matched = any(
                    fnmatch.fnmatchcase("/".join(candidate.split("/")[i:]), tail)
                    for i in range(len(candidate.split("/")))
                )
            if matched:
                result = not negated
                break
    return result


def dockerfile_copies(dockerfile: Path) -> list[str]:
    """Sources of COPY instructions that read the build context (not --from=stage)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    sources = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].upper() != "COPY":
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        sources.extend(a.strip("/") for a in args[:-1])
    return sources


def build_context() -> None:
    print("image build context (deploy/Dockerfile, .dockerignore)")
    patterns = dockerignore_patterns()
    copies = dockerfile_copies(ROOT / "deploy" / "Dockerfile")
    for source in copies:
        path = ROOT / source
        check(path.exists(), f"COPY {source}: exists")
        check(not ignored(source, patterns), f"COPY {source}: not excluded by .dockerignore")

    def copied(relative: str) -> bool:
        return any(relative == c or relative.startswith(c + "/") for c in copies)

    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    for member in manifest.get("workspace", {}).get("members", []):
        if member == ".":
            continue
        check(copied(f"{member}/Cargo.toml"), f"workspace member {member}: manifest is copied")
        check(copied(f"{member}/src"), f"workspace member {member}: sources are copied")
    check(copied("Cargo.lock"), "Cargo.lock is copied (the build uses --locked)")

    # Files the compiler reads besides src/: include_bytes!/include_str! and sqlx::migrate!.
    needed = set()
    for rust in (ROOT / "src").rglob("*.rs"):
        text = rust.read_text()
        for target in re.findall(r'include_(?:bytes|str)!\(\s*"([^"]+)"', text):
            needed.add(os.path.relpath((rust.parent / target).resolve(), ROOT))
        for target in re.findall(r'migrate!\(\s*"([^"]+)"', text):
            needed.add(os.path.relpath((ROOT / target).resolve(), ROOT))
    for relative in sorted(needed):
        check(
            (ROOT / relative).exists() and copied(relative) and not ignored(relative, patterns),
            f"compile-time input {relative} is in the build context and copied",
        )


# ---- the gateway's own configuration check -------------------------------------------------


def check_config(
    binary: str | None, env: dict[str, str], what: str, config_file: str | None = None
) -> None:
    if not binary:
        print(f"  skip  {what}: no built seedance-gateway (build it, or set SEEDANCE_GATEWAY_BIN)")
        return
    clean = {"PATH": "/usr/bin:/bin", "HOME": tempfile.gettempdir()}
    clean.update(env)
    clean.pop("SEEDANCE_GW_CONFIG", None)
    command = [binary]
    if config_file:
        command += ["--config", config_file]
    command.append("check-config")
    result = subprocess.run(command, env=clean, capture_output=True, text=True, timeout=60)
    if result.returncode == 0:
        ok(f"{what}: seedance-gateway check-config accepts it")
    else:
        detail = (result.stderr or result.stdout).strip().splitlines()
        fail(f"{what}: seedance-gateway check-config refused it: {' '.join(detail[-3:])}")


def compose(resolved: Path, binary: str | None) -> None:
    print("docker-compose.yml (resolved by compose config)")
    document = yaml.safe_load(resolved.read_text())
    services = document.get("services", {})
    for name in ("gateway", "postgres", "redis", "fake-upstream"):
        check(name in services, f"service {name} is defined")
    gateway = services.get("gateway", {})
    environment = gateway.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    env = {k: "" if v is None else str(v) for k, v in environment.items()}
    check(env.get("DATABASE_URL", "").startswith("postgres://"), "gateway uses PostgreSQL")
    check(env.get("REDIS_URL", "").startswith("redis://"), "gateway uses Redis")
    for dependency in ("postgres", "redis"):
        condition = (gateway.get("depends_on") or {}).get(dependency, {}).get("condition")
        check(condition == "service_healthy", f"gateway waits for {dependency} to be healthy")
    fake = services.get("fake-upstream", {})
    check(
        fake.get("entrypoint") == ["fake-upstream"],
        "fake-upstream runs the image's fake-upstream binary",
    )
    command = fake.get("command") or []
    check(
        "--host" in command and command[command.index("--host") + 1] == "0.0.0.0",
        "fake-upstream listens on every interface (--host 0.0.0.0)",
    )
    check_config(binary, env, "gateway environment")


# ---- Helm chart ----------------------------------------------------------------------------


def documents(rendered: dict[str, str]) -> list[dict]:
    objects = []
    for name, text in rendered.items():
        if name.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                objects.append(document)
    return objects


def helm_lint(helm, chart: Path, values: dict, label: str) -> None:
    report = helm.lint(str(chart), values, strict=True, namespace="video")
    errors = list(report.get("errors") or [])
    # Severities: 1 info, 2 warning, 4 error. Strict linting fails on warnings too.
    errors += [
        f"{m['path']}: {m['error']}" for m in report.get("messages") or [] if m["severity"] >= 2
    ]
    check(not errors, f"helm lint --strict ({label})" + (f": {errors}" if errors else ""))


def kube_schemas(objects: list[dict], label: str) -> None:
    import kubernetes_validate

    for version in KUBE_VERSIONS:
        wanted = kubernetes_validate.latest_version() if version == "latest" else version
        valid = 0
        for obj in objects:
            what = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(obj, wanted, strict=True)
            except Exception as error:  # ValidationError, SchemaNotFoundError, ...
                message = getattr(error, "message", None) or str(error)
                fail(f"{label}: {what} against Kubernetes {wanted}: {message.splitlines()[0]}")
            else:
                valid += 1
        if valid == len(objects):
            ok(f"{label}: all {valid} objects valid against the Kubernetes {wanted} schemas (strict)")


def chart_promises(objects: list[dict], values: dict, label: str) -> None:
    by_kind: dict[str, list[dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    deployments = by_kind.get("Deployment", [])
    check(len(deployments) == 1, f"{label}: one Deployment")
    if not deployments:
        return
    deployment = deployments[0]
    name = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    container = spec["containers"][0]
    pod_labels = pod["metadata"]["labels"]

    def path_of(probe: str) -> str | None:
        return (container.get(probe) or {}).get("httpGet", {}).get("path")

    check(path_of("livenessProbe") == "/healthz", f"{label}: liveness probe is /healthz")
    check(path_of("readinessProbe") == "/readyz", f"{label}: readiness probe is /readyz")
    check(path_of("startupProbe") == "/healthz", f"{label}: startup probe is /healthz")
    resources = container.get("resources") or {}
    check(
        bool(resources.get("requests")) and bool(resources.get("limits")),
        f"{label}: resource requests and limits are set",
    )
    security = container.get("securityContext") or {}
    check(spec["securityContext"].get("runAsNonRoot") is True, f"{label}: runAsNonRoot")
    check(security.get("readOnlyRootFilesystem") is True, f"{label}: readOnlyRootFilesystem")
    check(security.get("allowPrivilegeEscalation") is False, f"{label}: no privilege escalation")
    env = {e["name"]: e for e in container.get("env", [])}
    listen = env.get("SEEDANCE_GW_SERVER__LISTEN", {}).get("value", "")
    port = container["ports"][0]["containerPort"]
    check(listen == f"0.0.0.0:{port}", f"{label}: listens on 0.0.0.0:{port}")
    grace = int(env.get("SEEDANCE_GW_SERVER__SHUTDOWN_GRACE_SECS", {}).get("value", "20"))
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    sleep = int(pre_stop[1]) if pre_stop else 0
    # src/app.rs: in-flight requests get the grace, then the job worker and the webhook
    # sender up to as long each, one after the other.
    needed = 3 * grace + sleep
    period = spec.get("terminationGracePeriodSeconds", 30)
    check(
        period > needed,
        f"{label}: terminationGracePeriodSeconds {period} > preStop {sleep} s + 3 x grace {grace} s",
    )
    annotations = pod["metadata"].get("annotations") or {}
    if values.get("metrics", {}).get("scrapeAnnotations", True):
        check(
            annotations.get("prometheus.io/scrape") == "true"
            and annotations.get("prometheus.io/path") == "/metrics"
            and annotations.get("prometheus.io/port") == str(port),
            f"{label}: Prometheus scrape annotations point at /metrics on port {port}",
        )
    check("checksum/config" in annotations, f"{label}: config checksum rolls the pods")
    selector = deployment["spec"]["selector"]["matchLabels"]
    check(
        all(pod_labels.get(k) == v for k, v in selector.items()),
        f"{label}: Deployment selector matches its pods",
    )
    for service in by_kind.get("Service", []):
        check(
            all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items()),
            f"{label}: Service selector matches the pods",
        )
    for pdb in by_kind.get("PodDisruptionBudget", []):
        check(
            all(pod_labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items()),
            f"{label}: PodDisruptionBudget selector matches the pods",
        )
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        target = hpa["spec"]["scaleTargetRef"]
        check(
            hpa["apiVersion"] == "autoscaling/v2"
            and target["kind"] == "Deployment"
            and target["name"] == name,
            f"{label}: HorizontalPodAutoscaler scales the Deployment",
        )
        check("replicas" not in deployment["spec"], f"{label}: no fixed replicas under the HPA")
    if values.get("autoscaling", {}).get("enabled"):
        check(bool(by_kind.get("HorizontalPodAutoscaler")), f"{label}: HPA rendered")
    accounts = [a["metadata"]["name"] for a in by_kind.get("ServiceAccount", [])]
    if accounts:
        check(spec.get("serviceAccountName") in accounts, f"{label}: pods use the ServiceAccount")


def chart_config(objects: list[dict], binary: str | None, label: str) -> None:
    configmaps = [o for o in objects if o["kind"] == "ConfigMap"]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    if not configmaps or "config.toml" not in configmaps[0].get("data", {}):
        fail(f"{label}: ConfigMap with config.toml")
        return
    text = configmaps[0]["data"]["config.toml"]
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        fail(f"{label}: config.toml is not TOML: {error}")
        return
    ok(f"{label}: config.toml parses")
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    env_literal = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    check(
        env_literal.get("SEEDANCE_GW_CONFIG", "").startswith(mounts.get("config", "//") + "/"),
        f"{label}: SEEDANCE_GW_CONFIG points into the mounted ConfigMap",
    )
    storage = parsed.get("storage", {}).get("dir", "data/storage")
    check(
        storage.startswith(mounts.get("data", "//") + "/"),
        f"{label}: storage.dir {storage} is on the data volume (the root filesystem is read-only)",
    )
    # What the Secret must provide for this configuration: DATABASE_URL and a key for every
    # enabled upstream provider. Placeholders stand in for them.
    env = dict(env_literal)
    env["DATABASE_URL"] = "postgres://gateway:placeholder@postgres:5432/gateway"
    for provider in PROVIDERS:
        if parsed.get("providers", {}).get(provider, {}).get("enabled"):
            env[f"SEEDANCE_GW_PROVIDERS__{provider.upper()}__API_KEY"] = "placeholder-key"
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write(text)
    try:
        check_config(binary, env, f"{label}: config.toml with the pod's environment", handle.name)
    finally:
        os.unlink(handle.name)


def helm_chart(chart: Path, binary: str | None) -> None:
    import helm_python as helm

    print(f"Helm chart {chart.relative_to(ROOT)} (Helm SDK {helm.helm_sdk_version()})")
    variants = [("defaults", {"existingSecret": "seedance-gateway"})]
    for path in sorted((chart / "ci").glob("*-values.yaml")):
        variants.append((f"ci/{path.name}", yaml.safe_load(path.read_text()) or {}))
    with helm.Chart.load(str(chart)) as loaded:
        try:
            loaded.render(values=None, name="gw", namespace="video", is_install=True)
        except helm.HelmError as error:
            check(
                "existingSecret is required" in str(error),
                "rendering without existingSecret fails with a clear message",
            )
        else:
            fail("rendering without existingSecret should fail")
        for label, values in variants:
            helm_lint(helm, chart, values, label)
            try:
                rendered = loaded.render(
                    values=values, name="gw", namespace="video", is_install=True
                )
            except helm.HelmError as error:
                fail(f"render ({label}): {error}")
                continue
            objects = documents(rendered)
            kinds = sorted(o["kind"] for o in objects)
            ok(f"render ({label}): {', '.join(kinds)}")
            kube_schemas(objects, label)
            merged = loaded.merge_values(values)
            chart_promises(objects, merged, label)
            chart_config(objects, binary, label)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway-bin", default=os.environ.get("SEEDANCE_GATEWAY_BIN") or None)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build-context")
    compose_parser = sub.add_parser("compose")
    compose_parser.add_argument("resolved", type=Path)
    helm_parser = sub.add_parser("helm")
    helm_parser.add_argument("chart", type=Path)
    args = parser.parse_args()
    if args.command == "build-context":
        build_context()
    elif args.command == "compose":
        compose(args.resolved, args.gateway_bin)
    else:
        helm_chart(args.chart.resolve(), args.gateway_bin)
    if failures:
        print(f"\n{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
