{{/* Names, labels and images shared by every template. */}}

{{- define "panorama.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "panorama.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The object name of one component: (dict "root" $ "component" "io") */}}
{{- define "panorama.componentName" -}}
{{- printf "%s-%s" (include "panorama.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: name, instance and component only (they must never change). */}}
{{- define "panorama.selectorLabels" -}}
app.kubernetes.io/name: {{ include "panorama.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "panorama.labels" -}}
{{ include "panorama.selectorLabels" . }}
app.kubernetes.io/part-of: panorama
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels of objects that belong to no single component (Secrets, the video volume). */}}
{{- define "panorama.commonLabels" -}}
{{ include "panorama.labels" (dict "root" . "component" "shared") }}
{{- end -}}

{{/* The values key of a component: "video-worker" -> "videoWorker". */}}
{{- define "panorama.valuesKey" -}}
{{- . | camelcase | untitle -}}
{{- end -}}

{{/* Image reference of a Panorama component: (dict "root" $ "component" "io") */}}
{{- define "panorama.image" -}}
{{- $v := index .root.Values (include "panorama.valuesKey" .component) -}}
{{- $repo := $v.image.repository -}}
{{- if .root.Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .root.Values.image.registry) $repo -}}
{{- end -}}
{{- $tag := $v.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if hasPrefix "sha256:" $tag -}}
{{- printf "%s@%s" $repo $tag -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{- define "panorama.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Secret names. */}}
{{- define "panorama.apiKeysSecret" -}}
{{- .Values.apiKeys.existingSecret | default (printf "%s-api-keys" (include "panorama.fullname" .)) -}}
{{- end -}}

{{- define "panorama.internalTokenSecret" -}}
{{- .Values.internalToken.existingSecret | default (printf "%s-internal-token" (include "panorama.fullname" .)) -}}
{{- end -}}

{{- define "panorama.databaseSecret" -}}
{{- .Values.database.existingSecret | default (printf "%s-database" (include "panorama.fullname" .)) -}}
{{- end -}}

{{- define "panorama.redisSecret" -}}
{{- .Values.externalRedis.existingSecret | default (printf "%s-redis" (include "panorama.fullname" .)) -}}
{{- end -}}

{{- define "panorama.storageClaim" -}}
{{- .Values.storage.existingClaim | default (printf "%s-videos" (include "panorama.fullname" .)) -}}
{{- end -}}

{{/* Where the services find their dependencies. */}}
{{- define "panorama.databaseHost" -}}
{{- if .Values.postgresql.enabled -}}
{{- include "panorama.componentName" (dict "root" . "component" "postgresql") -}}
{{- else -}}
{{- .Values.externalDatabase.host -}}
{{- end -}}
{{- end -}}

{{- define "panorama.databasePort" -}}
{{- if .Values.postgresql.enabled -}}5432{{- else -}}{{ .Values.externalDatabase.port }}{{- end -}}
{{- end -}}

{{- define "panorama.redisUrl" -}}
{{- printf "redis://%s:6379/0" (include "panorama.componentName" (dict "root" . "component" "redis")) -}}
{{- end -}}

{{- define "panorama.otelEndpoint" -}}
{{- if .Values.jaeger.enabled -}}
{{- printf "http://%s:4318" (include "panorama.componentName" (dict "root" . "component" "jaeger")) -}}
{{- else -}}
{{- .Values.otel.endpoint -}}
{{- end -}}
{{- end -}}

{{/*
Environment of a service that needs the database: the password comes from the Secret and is
expanded by the kubelet into the URL, so the URL itself never sits in a ConfigMap.
*/}}
{{- define "panorama.databaseEnv" -}}
- name: PANORAMA_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "panorama.databaseSecret" . }}
      key: password
- name: PANORAMA_DATABASE_URL
  value: {{ printf "postgresql+asyncpg://%s:$(PANORAMA_DB_PASSWORD)@%s:%s/%s%s" .Values.database.username (include "panorama.databaseHost" .) (include "panorama.databasePort" .) .Values.database.name (ternary (printf "?%s" .Values.externalDatabase.query) "" (and (not .Values.postgresql.enabled) (ne .Values.externalDatabase.query ""))) | quote }}
{{- end -}}

{{- define "panorama.redisEnv" -}}
{{- if .Values.redis.enabled }}
- name: PANORAMA_REDIS_URL
  value: {{ include "panorama.redisUrl" . | quote }}
{{- else }}
- name: PANORAMA_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "panorama.redisSecret" . }}
      key: redis-url
{{- end }}
{{- end -}}

{{- define "panorama.rabbitmqSecret" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- .Values.rabbitmq.existingSecret | default (printf "%s-rabbitmq" (include "panorama.fullname" .)) -}}
{{- else -}}
{{- .Values.externalRabbitmq.existingSecret | default (printf "%s-rabbitmq" (include "panorama.fullname" .)) -}}
{{- end -}}
{{- end -}}

{{- define "panorama.usesRabbitmq" -}}
{{- if or .Values.rabbitmq.enabled .Values.externalRabbitmq.url .Values.externalRabbitmq.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* PANORAMA_BROKER_URL of the gateway and the worker when RabbitMQ is the broker (nothing otherwise: Redis). */}}
{{- define "panorama.brokerEnv" -}}
{{- if .Values.rabbitmq.enabled }}
- name: PANORAMA_RABBITMQ_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "panorama.rabbitmqSecret" . }}
      key: password
- name: PANORAMA_BROKER_URL
  value: {{ printf "amqp://%s:$(PANORAMA_RABBITMQ_PASSWORD)@%s:5672/" .Values.rabbitmq.username (include "panorama.componentName" (dict "root" . "component" "rabbitmq")) | quote }}
{{- else if include "panorama.usesRabbitmq" . }}
- name: PANORAMA_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "panorama.rabbitmqSecret" . }}
      key: broker-url
{{- end }}
{{- end -}}
