{{/* Names, labels and shared fragments of the trustwatch chart. */}}

{{- define "trustwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trustwatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "trustwatch.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "trustwatch.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "trustwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trustwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "trustwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "trustwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: trustwatch
{{- end }}

{{- define "trustwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trustwatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "trustwatch.image" -}}
{{- $repository := required "image.repository is not set: no trustwatch image is published, so build and push one (docs/deploy.md, \"Build the image\") and set image.repository to it" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (toString (default .Chart.AppVersion .Values.image.tag)) }}
{{- end }}
{{- end }}

{{/* The Secret holding the webhook's serving certificate, whichever way it is issued. */}}
{{- define "trustwatch.tlsSecretName" -}}
{{- if eq .Values.tls.mode "secret" }}
{{- required "tls.secret.name is required when tls.mode=secret" .Values.tls.secret.name }}
{{- else }}
{{- printf "%s-tls" (include "trustwatch.fullname" .) }}
{{- end }}
{{- end }}

{{- define "trustwatch.policiesConfigMap" -}}
{{- default (printf "%s-policies" (include "trustwatch.fullname" .)) .Values.existingPoliciesConfigMap }}
{{- end }}

{{/* The ConfigMap holding the Sigstore trusted_root.json given to --trusted-root ("" when none: trustwatch
     keeps its shipped public-good root). Wrong combinations fail here, naming the value to set, so that
     `helm install` refuses them instead of a Pod that cannot start. */}}
{{- define "trustwatch.trustedRootConfigMap" -}}
{{- $root := .Values.trustedRoot }}
{{- if and $root.json $root.existingConfigMap }}
{{- fail "trustedRoot.json and trustedRoot.existingConfigMap are both set: give the trusted_root.json either inline (trustedRoot.json, e.g. --set-file trustedRoot.json=trusted_root.json) or as the name of a ConfigMap that holds it (trustedRoot.existingConfigMap), not both" }}
{{- else if $root.existingConfigMap }}
{{- if not $root.key }}
{{- fail (printf "trustedRoot.key is empty: set it to the key of ConfigMap %s that holds the trusted_root.json (`kubectl create configmap %s --from-file=trusted_root.json` stores it under trusted_root.json, the default)" $root.existingConfigMap $root.existingConfigMap) }}
{{- end }}
{{- $root.existingConfigMap }}
{{- else if $root.json }}
{{- $document := fromJson $root.json }}
{{- if hasKey $document "Error" }}
{{- fail (printf "trustedRoot.json is not JSON (%s): give the content of a Sigstore trusted_root.json, e.g. --set-file trustedRoot.json=trusted_root.json" (get $document "Error")) }}
{{- end }}
{{- $mediaType := "application/vnd.dev.sigstore.trustedroot+json;version=0.1" }}
{{- if ne (toString (get $document "mediaType")) $mediaType }}
{{- fail (printf "trustedRoot.json is not a Sigstore trusted_root.json: its mediaType must be %s (a TUF root.json or a bare key does not work: give the trusted_root.json your Sigstore's TUF repository serves)" $mediaType) }}
{{- end }}
{{- printf "%s-trusted-root" (include "trustwatch.fullname" .) }}
{{- end }}
{{- end }}

{{/* DNS names the API server uses to reach the webhook Service. */}}
{{- define "trustwatch.serviceDNSNames" -}}
{{- $svc := include "trustwatch.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}
