{{- define "token-sync.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "token-sync.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "token-sync.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "token-sync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "token-sync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "token-sync.keySecretName" -}}
{{- default (printf "%s-key" (include "token-sync.fullname" .)) .Values.credentials.existingSecret -}}
{{- end -}}

{{- define "token-sync.passwordSecretName" -}}
{{- default (printf "%s-db" (include "token-sync.fullname" .)) .Values.database.existingSecret -}}
{{- end -}}

{{- define "token-sync.usesKey" -}}
{{- if and (not .Values.emulator.enabled) (eq .Values.credentials.mode "key") -}}true{{- end -}}
{{- end -}}
