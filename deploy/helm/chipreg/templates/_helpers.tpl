{{- define "chipreg.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chipreg.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "chipreg.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "chipreg.logKeySecret" -}}
{{- if .Values.logKey.existingSecret -}}
{{ .Values.logKey.existingSecret }}
{{- else -}}
{{ include "chipreg.fullname" . }}-log-key
{{- end -}}
{{- end -}}

{{/* Environment and volumes every chipreg container shares. */}}
{{- define "chipreg.env" -}}
- name: CHIPREG_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: url
- name: CHIPREG_LOG_KEY_FILE
  value: /etc/chipreg/log-key/log-key
{{- range $name, $value := .Values.settings }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}
