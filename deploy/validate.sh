#!/usr/bin/env bash
# Offline validation of the manifests: every resource against the Kubernetes schemas (kubernetes-validate
# bundles them), and every kustomization's references resolved.
set -euo pipefail
cd "$(dirname "$0")"
if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0'
fi
python3 - <<'PY'
import os, sys, yaml
bad = []
for root, _, files in os.walk("."):
    if "kustomization.yaml" not in files:
        continue
    k = yaml.safe_load(open(os.path.join(root, "kustomization.yaml")))
    for key in ("resources", "components"):
        for ref in k.get(key, []):
            if not os.path.exists(os.path.join(root, ref)):
                bad.append(f"{root}/kustomization.yaml: {key} entry {ref} does not exist")
    for patch in k.get("patches", []):
        if isinstance(patch, dict) and "path" in patch and not os.path.exists(os.path.join(root, patch["path"])):
            bad.append(f"{root}/kustomization.yaml: patch {patch['path']} does not exist")
if bad:
    print("\n".join(bad)); sys.exit(1)
print("kustomizations: all references resolve")
PY
python3 -m kubernetes_validate --strict --kubernetes-version 1.30.0 base/config.yaml base/intake.yaml base/routing.yaml \
  base/registry.yaml base/supervision.yaml base/subsidy.yaml base/gateway.yaml base/audit-anchor.yaml nats/nats.yaml
