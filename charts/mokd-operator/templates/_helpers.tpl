{{/* Name of the chart, overridable. */}}
{{- define "mokd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name of the release's objects. */}}
{{- define "mokd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "mokd.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "mokd.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "mokd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mokd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "mokd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mokd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mokd
{{- end }}

{{/* Labels the operator puts on trainer pods (operator/src/builders/common.ts). */}}
{{- define "mokd.trainerSelectorLabels" -}}
app.kubernetes.io/name: mokd-trainer
app.kubernetes.io/managed-by: mokd-operator
{{- end }}

{{- define "mokd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mokd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mokd.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The watched namespaces, as a JSON list (`include "mokd.watchNamespaces" . | fromJsonArray`): watchNamespace and
watchNamespaces together; empty for every namespace.
*/}}
{{- define "mokd.watchNamespaces" -}}
{{- concat (list .Values.watchNamespace) .Values.watchNamespaces | compact | uniq | toJson }}
{{- end }}
