{{/* Names, labels and computed values shared by the templates. */}}

{{/* The chart name, or nameOverride. */}}
{{- define "brokkr-broker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every resource: fullnameOverride, else the release name when it already holds the chart name,
else <release>-<chart>. Truncated to 63 characters, the limit of a DNS label.
*/}}
{{- define "brokkr-broker.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The helm.sh/chart label: <chart>-<version>. */}}
{{- define "brokkr-broker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "brokkr-broker.labels" -}}
helm.sh/chart: {{ include "brokkr-broker.chart" . }}
{{ include "brokkr-broker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the broker's pods; they never change across upgrades. */}}
{{- define "brokkr-broker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "brokkr-broker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "brokkr-broker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "brokkr-broker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ConfigMap the broker watches; the pods learn its name from BROKKR__CONFIG_RELOAD__CONFIGMAP. */}}
{{- define "brokkr-broker.configMapName" -}}
{{- include "brokkr-broker.fullname" . }}
{{- end }}

{{/*
The restart-only settings of `config` (log.format, config_reload.enabled) as a stable string, with the broker's
defaults filled in, so that leaving a key out and writing its default give the same text. The pod annotation
brokkr.io/restart-only-config hashes it: live settings must never change the pod template, restart-only ones must.
Keep this list in step with the restart-only declarations in crates/brokkr-config/src/declaration.rs.
*/}}
{{- define "brokkr-broker.restartOnlyConfig" -}}
{{- $config := get .Values "config" | default dict }}
{{- $log := get $config "log" | default dict }}
{{- $reload := get $config "config_reload" | default dict }}
{{- $format := ternary (get $log "format") "text" (hasKey $log "format") }}
{{- $enabled := ternary (get $reload "enabled") true (hasKey $reload "enabled") }}
{{- printf "log.format=%v\nconfig_reload.enabled=%v\n" $format $enabled }}
{{- end }}

{{/* terminationGracePeriodSeconds: the value, or drain delay + 15 s; fails when it leaves no time to drain. */}}
{{- define "brokkr-broker.terminationGracePeriodSeconds" -}}
{{- $drain := int .Values.drainDelaySeconds }}
{{- $grace := add $drain 15 }}
{{- if not (kindIs "invalid" .Values.terminationGracePeriodSeconds) }}
{{- $grace = int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- if lt (int $grace) (add $drain 10 | int) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least drainDelaySeconds + 10 (%d): the broker drains for drainDelaySeconds, then gives requests in flight up to 10 s" (int $grace) (add $drain 10 | int)) }}
{{- end }}
{{- $grace }}
{{- end }}

{{/* Name of the Secret that holds the webhook's serving certificate, in both the self-signed and cert-manager case. */}}
{{- define "brokkr-broker.webhookTLSSecretName" -}}
{{- printf "%s-webhook-tls" (include "brokkr-broker.fullname" .) }}
{{- end }}

{{/* The webhook's own Service: ClusterIP, the webhook port only, whatever type the HTTP API's Service has. */}}
{{- define "brokkr-broker.webhookServiceName" -}}
{{- printf "%s-webhook" (include "brokkr-broker.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* The DNS names the API server uses to call the webhook through its Service. */}}
{{- define "brokkr-broker.webhookDNSNames" -}}
{{- $svc := include "brokkr-broker.webhookServiceName" . }}
{{- list (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) | toJson }}
{{- end }}

{{/*
The self-signed webhook TLS material as JSON {"ca.crt", "tls.crt", "tls.key"}, each base64-encoded.

Reuses the Secret already in the cluster (lookup) when it was made for the same DNS names, so the certificate is generated at install and kept across
upgrades; otherwise generates a CA and a serving certificate valid for 3650 days. The result is computed once per
render and kept on the root context, which Helm shares between the templates of a chart: webhook-tls-secret.yaml
and webhook.yaml both include this, and two calls of genCA would give the Secret and the caBundle different CAs.
Without cluster access (`helm template`, `--dry-run` without `=server`) lookup finds nothing and a fresh pair is
generated on every render.
*/}}
{{- define "brokkr-broker.webhookTLS" -}}
{{- if not (hasKey . "brokkrWebhookTLS") }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "brokkr-broker.webhookTLSSecretName" .) }}
{{- $data := dig "data" dict $existing }}
{{- $tls := dict }}
{{- /* A certificate made for other names (an older chart called the webhook through the HTTP API's Service) is replaced. */}}
{{- $madeFor := dig "metadata" "annotations" "brokkr.io/webhook-dns-names" "" $existing }}
{{- if and (get $data "ca.crt") (get $data "tls.crt") (get $data "tls.key") (eq $madeFor (include "brokkr-broker.webhookDNSNames" .)) }}
{{- $tls = dict "ca.crt" (get $data "ca.crt") "tls.crt" (get $data "tls.crt") "tls.key" (get $data "tls.key") }}
{{- else }}
{{- $dnsNames := include "brokkr-broker.webhookDNSNames" . | fromJsonArray }}
{{- $ca := genCA (printf "%s-webhook-ca" (include "brokkr-broker.fullname" .)) 3650 }}
{{- $cert := genSignedCert (first $dnsNames) nil $dnsNames 3650 $ca }}
{{- $tls = dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) }}
{{- end }}
{{- $_ := set . "brokkrWebhookTLS" $tls }}
{{- end }}
{{- get . "brokkrWebhookTLS" | toJson }}
{{- end }}

{{/* The podStatus ValidatingAdmissionPolicy and its binding: cluster-scoped, so the name carries the namespace. */}}
{{- define "brokkr-broker.podStatusPolicyName" -}}
{{- printf "%s-%s-pod-status" (include "brokkr-broker.fullname" .) .Release.Namespace }}
{{- end }}
