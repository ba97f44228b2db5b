{{/*
NetworkPolicy pieces. templates/networkpolicy-default-deny.yaml denies every packet in and out of
the release's pods; each component's networkpolicy.yaml then allows only the edges it uses.
*/}}

{{/* A peer: the release's pods of one component. (dict "root" $ "component" "io") */}}
{{- define "panorama.peer" -}}
- podSelector:
    matchLabels:
      {{- include "panorama.selectorLabels" . | nindent 6 }}
{{- end -}}

{{- define "panorama.policyHeader" -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "panorama.componentName" . }}
  labels:
    {{- include "panorama.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "panorama.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* Egress every pod needs: cluster DNS, and the OTLP endpoint when Jaeger runs in the release. */}}
{{- define "panorama.egressBase" -}}
- to:
    - namespaceSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.dns.namespaceLabels | nindent 10 }}
      podSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.dns.podLabels | nindent 10 }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- if .Values.jaeger.enabled }}
- to:
    {{- include "panorama.peer" (dict "root" . "component" "jaeger") | nindent 4 }}
  ports:
    - {protocol: TCP, port: 4318}
{{- end }}
{{- end -}}

{{/* Egress to Postgres: the in-cluster pod, or the external server's port (and CIDRs). */}}
{{- define "panorama.egressDatabase" -}}
{{- if .Values.postgresql.enabled }}
- to:
    {{- include "panorama.peer" (dict "root" . "component" "postgresql") | nindent 4 }}
  ports:
    - {protocol: TCP, port: 5432}
{{- else }}
- {{- with .Values.externalDatabase.cidrs }}
  to:
    {{- range . }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  {{- end }}
  ports:
    - {protocol: TCP, port: {{ .Values.externalDatabase.port }}}
{{- end }}
{{- end -}}

{{- define "panorama.egressRedis" -}}
{{- if .Values.redis.enabled }}
- to:
    {{- include "panorama.peer" (dict "root" . "component" "redis") | nindent 4 }}
  ports:
    - {protocol: TCP, port: 6379}
{{- else }}
- {{- with .Values.externalRedis.cidrs }}
  to:
    {{- range . }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  {{- end }}
  ports:
    - {protocol: TCP, port: {{ .Values.externalRedis.port }}}
{{- end }}
{{- end -}}

{{- define "panorama.egressRabbitmq" -}}
{{- if .Values.rabbitmq.enabled }}
- to:
    {{- include "panorama.peer" (dict "root" . "component" "rabbitmq") | nindent 4 }}
  ports:
    - {protocol: TCP, port: 5672}
{{- else if include "panorama.usesRabbitmq" . }}
- {{- with .Values.externalRabbitmq.cidrs }}
  to:
    {{- range . }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  {{- end }}
  ports:
    - {protocol: TCP, port: {{ .Values.externalRabbitmq.port }}}
{{- end }}
{{- end -}}
