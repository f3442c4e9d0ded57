{{/* Names and labels shared by every template. */}}
{{- define "kubetrade.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubetrade.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubetrade.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "kubetrade.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubetrade
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "api"). */}}
{{- define "kubetrade.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetrade.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kubetrade.componentLabels" -}}
{{ include "kubetrade.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kubetrade.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "kubetrade.serviceAccount" -}}
{{- printf "%s-%s" (include "kubetrade.fullname" .ctx) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubetrade.redisHost" -}}
{{- printf "%s-redis" (include "kubetrade.fullname" .) -}}
{{- end -}}

{{- define "kubetrade.apiSecret" -}}
{{- default (printf "%s-api" (include "kubetrade.fullname" .)) .Values.api.auth.existingSecret -}}
{{- end -}}

{{- define "kubetrade.notifySecret" -}}
{{- default (printf "%s-telegram" (include "kubetrade.fullname" .)) .Values.notify.existingSecret -}}
{{- end -}}

{{/* Environment every component shares: where Redis is and how keys are prefixed. */}}
{{- define "kubetrade.redisEnv" -}}
{{- if and (not .Values.redis.enabled) .Values.redis.existingSecret }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: redis-url
{{- else if .Values.redis.enabled }}
- name: REDIS_URL
  value: {{ printf "redis://%s:6379/0" (include "kubetrade.redisHost" .) | quote }}
{{- else }}
- name: REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- end }}
- name: KUBETRADE_REDIS_PREFIX
  value: {{ .Values.redisPrefix | quote }}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end -}}

{{/* Pod and container security contexts that pass the `restricted` Pod Security Standard. */}}
{{- define "kubetrade.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "kubetrade.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The candle store's claim: an existing one, the chart's, or "" (none). */}}
{{- define "kubetrade.candleClaim" -}}
{{- $p := .Values.candleData.persistence -}}
{{- if $p.existingClaim -}}{{ $p.existingClaim }}
{{- else if $p.enabled -}}{{ include "kubetrade.fullname" . }}-candles
{{- end -}}
{{- end }}
