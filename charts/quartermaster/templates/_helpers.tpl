{{- define "quartermaster.name" -}}{{ .Release.Name }}-quartermaster{{- end -}}
{{- define "quartermaster.serviceAccountName" -}}
{{- default (include "quartermaster.name" .) .Values.serviceAccount.name -}}
{{- end -}}
{{- define "quartermaster.labels" -}}
app.kubernetes.io/name: quartermaster
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
