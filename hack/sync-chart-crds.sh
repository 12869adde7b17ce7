#!/usr/bin/env bash
# Copies the generated files the Helm chart needs into the chart, so that the chart stays
# self-contained (helm package/install never reaches outside charts/guestagent-operator):
#   config/crd/bases/*.yaml         -> files/crd/          (rendered by templates/crd/crds.yaml)
#   config/rbac/role.yaml           -> files/rbac/manager-role.yaml  (controller ClusterRole rules)
#   config/agentd/rbac/role.yaml    -> files/rbac/agentd-role.yaml   (agentd ClusterRole rules)
#   config/grafana/*.json           -> files/dashboards/   (Grafana dashboard ConfigMap)
#   config/prometheus/alerts.yaml   -> files/prometheus/alerts.yaml  (templates/prometheusrule.yaml)
# Run it after `make manifests` (or whenever these sources change). test/install fails when
# the copies differ from their sources, so CI catches a forgotten sync.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CHART=$ROOT/charts/guestagent-operator

rm -f "$CHART"/files/crd/*.yaml "$CHART"/files/dashboards/*.json
mkdir -p "$CHART/files/crd" "$CHART/files/rbac" "$CHART/files/dashboards" "$CHART/files/prometheus"
cp "$ROOT"/config/crd/bases/*.yaml "$CHART/files/crd/"
cp "$ROOT/config/rbac/role.yaml" "$CHART/files/rbac/manager-role.yaml"
cp "$ROOT/config/agentd/rbac/role.yaml" "$CHART/files/rbac/agentd-role.yaml"
cp "$ROOT"/config/grafana/*.json "$CHART/files/dashboards/"
cp "$ROOT/config/prometheus/alerts.yaml" "$CHART/files/prometheus/alerts.yaml"
echo "synced CRDs, generated RBAC, dashboards and alerts into ${CHART#"$ROOT"/}"
