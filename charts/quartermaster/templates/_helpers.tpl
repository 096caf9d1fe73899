{{- define "quartermaster.name" -}}{{ .Release.Name }}-quartermaster{{- end -}}
{{- define "quartermaster.serviceAccountName" -}}
{{- default (include "quartermaster.name" .) .Values.serviceAccount.name -}}
{{- end -}}
{{- define "quartermaster.selectorLabels" -}}
app.kubernetes.io/name: quartermaster
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "quartermaster.labels" -}}
{{ include "quartermaster.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
