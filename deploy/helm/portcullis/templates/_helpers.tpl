{{/* The release's object name, at most 63 characters. */}}
{{- define "portcullis.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the gateway pods. */}}
{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{/* Labels on every object. */}}
{{- define "portcullis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The Secret holding api-keys (and jwt-secret). */}}
{{- define "portcullis.secretName" -}}
{{- default (printf "%s-secrets" (include "portcullis.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* preStop + drain delay + drain timeout (rounded up to seconds) + margin to exit. */}}
{{- define "portcullis.gracePeriod" -}}
{{- add .Values.drain.preStopSeconds (div (add .Values.drain.delayMs .Values.drain.timeoutMs 999) 1000) .Values.drain.exitMarginSeconds -}}
{{- end -}}

{{/* Variables the chart sets from other values: refused in `env`, which would duplicate them. */}}
{{- define "portcullis.checkEnv" -}}
{{- $fromValues := dict "HOST" "nothing (fixed by the chart)" "PORT" "nothing (fixed by the chart)" "ADMIN_HOST" "nothing (fixed by the chart)" "ADMIN_PORT" "metrics.port" "ROUTES_DIR" "routes" "DRAIN_DELAY_MS" "drain.delayMs" "DRAIN_TIMEOUT_MS" "drain.timeoutMs" "API_KEYS_FILE" "secrets" "API_KEYS" "secrets.apiKeys" "JWT_SECRET" "secrets.jwtSecret" "REDIS_URL" "redis.url or redis.existingSecret" "TLS_CERT_FILE" "tls.secretName" "TLS_KEY_FILE" "tls.secretName" "HTTP2" "tls.http2" -}}
{{- range $name, $use := $fromValues -}}
{{- if hasKey $.Values.env $name -}}
{{- fail (printf "env.%s: set by the chart from other values; use %s" $name $use) -}}
{{- end -}}
{{- end -}}
{{- end -}}
