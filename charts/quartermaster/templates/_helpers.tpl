{{- /* Kubernetes names are DNS labels: 63 characters at most. */}}
{{- define "quartermaster.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "quartermaster.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "quartermaster.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* The fullname with a suffix, the fullname cut so that the suffix always fits:
       (dict "context" . "suffix" "metrics") */}}
{{- define "quartermaster.suffixedName" -}}
{{- $room := sub 62 (len .suffix) | int -}}
{{- printf "%s-%s" (include "quartermaster.fullname" .context | trunc $room | trimSuffix "-") .suffix -}}
{{- end -}}
{{- define "quartermaster.serviceAccountName" -}}
{{- default (include "quartermaster.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}
{{- define "quartermaster.leaseName" -}}
{{- default (include "quartermaster.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}
{{- define "quartermaster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quartermaster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "quartermaster.labels" -}}
{{ include "quartermaster.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}
{{- /* Tells the metrics Service from the API's, which shares its other labels: what the
       ServiceMonitor selects. */}}
{{- define "quartermaster.metricsComponent" -}}
app.kubernetes.io/component: metrics
{{- end -}}
{{- /* The price table's file name in its ConfigMap: the chart's own, or the given one's key. */}}
{{- define "quartermaster.priceTableKey" -}}
{{- if .Values.cost.priceTableConfigMap.name -}}{{ .Values.cost.priceTableConfigMap.key }}{{- else -}}prices.yaml{{- end -}}
{{- end -}}
