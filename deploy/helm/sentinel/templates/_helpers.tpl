{{/* Names and labels shared by the templates. */}}

{{- define "sentinel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sentinel.fullname" -}}
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

{{- define "sentinel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sentinel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sentinel.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "sentinel.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The Secret the pods read: yours (secret.existingSecret) or the chart's. */}}
{{- define "sentinel.secretName" -}}
{{- default (include "sentinel.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{- define "sentinel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sentinel.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sentinel.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The container environment: non-secret settings, the required secrets one by one, and
every key of the Secret. */}}
{{- define "sentinel.env" -}}
env:
  - name: SENTINEL_WEBHOOK_ADDR
    value: {{ printf "0.0.0.0:%d" (int .Values.service.port) | quote }}
  {{- range $k, $v := .Values.env }}
  - name: {{ $k }}
    value: {{ $v | toString | quote }}
  {{- end }}
  {{- range list "DATABASE_URL" "SLACK_APP_TOKEN" "SLACK_BOT_TOKEN" }}
  - name: {{ . }}
    valueFrom:
      secretKeyRef:
        name: {{ include "sentinel.secretName" $ }}
        key: {{ . }}
  {{- end }}
envFrom:
  - secretRef:
      name: {{ include "sentinel.secretName" . }}
{{- end }}
