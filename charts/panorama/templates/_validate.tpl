{{/* Refuse values that would install a suite that cannot start; each message says what to set. */}}
{{- define "panorama.validateValues" -}}
{{- $v := .Values -}}
{{- if not $v.apiKeys.existingSecret -}}
{{- if not $v.apiKeys.keys -}}
{{- fail "apiKeys.keys is empty: set it to one or more comma-separated keys of at least 16 characters (e.g. --set apiKeys.keys=$(openssl rand -hex 24)), or name a Secret in apiKeys.existingSecret" -}}
{{- end -}}
{{- range $key := splitList "," $v.apiKeys.keys -}}
{{- if lt (len (trim $key)) 16 -}}
{{- fail "apiKeys.keys: every key must be at least 16 characters (the gateway refuses shorter ones); generate one with: openssl rand -hex 24" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $v.internalToken.existingSecret -}}
{{- if lt (len (trim $v.internalToken.token)) 16 -}}
{{- fail "internalToken.token must be set to at least 16 characters (io and compute refuse callers without it; the gateway sends it): --set internalToken.token=$(openssl rand -hex 24), or name a Secret holding `internal-token` in internalToken.existingSecret" -}}
{{- end -}}
{{- end -}}
{{- if and (not $v.database.existingSecret) (not $v.database.password) -}}
{{- fail "database.password is empty: set it (URL-safe characters) or name a Secret holding `password` in database.existingSecret" -}}
{{- end -}}
{{- if and (not $v.postgresql.enabled) (not $v.externalDatabase.host) -}}
{{- fail "postgresql.enabled is false but externalDatabase.host is empty: set the external server's host, or enable the in-cluster Postgres" -}}
{{- end -}}
{{- if and (not $v.redis.enabled) (not $v.externalRedis.url) (not $v.externalRedis.existingSecret) -}}
{{- fail "redis.enabled is false but externalRedis.url and externalRedis.existingSecret are empty: set one, or enable the in-cluster Redis" -}}
{{- end -}}
{{- if and $v.rabbitmq.enabled (or $v.externalRabbitmq.url $v.externalRabbitmq.existingSecret) -}}
{{- fail "rabbitmq.enabled is true and externalRabbitmq is set too: use the in-cluster RabbitMQ or the external one, not both" -}}
{{- end -}}
{{- if and $v.rabbitmq.enabled (not $v.rabbitmq.password) (not $v.rabbitmq.existingSecret) -}}
{{- fail "rabbitmq.enabled is true but rabbitmq.password is empty: set it (URL-safe characters) or name a Secret holding `password` in rabbitmq.existingSecret" -}}
{{- end -}}
{{- range $c := list "gateway" "io" "compute" "videoWorker" -}}
{{- $cv := index $v $c -}}
{{- if and $cv.autoscaling.enabled (gt (int $cv.autoscaling.minReplicas) (int $cv.autoscaling.maxReplicas)) -}}
{{- fail (printf "%s.autoscaling.minReplicas (%v) is above maxReplicas (%v): lower minReplicas or raise maxReplicas" $c $cv.autoscaling.minReplicas $cv.autoscaling.maxReplicas) -}}
{{- end -}}
{{- end -}}
{{- range $c := list "gateway" "io" "compute" -}}
{{- $cv := index $v $c -}}
{{- if le (int $cv.terminationGracePeriodSeconds) (add (int $cv.preStopSleepSeconds) (int $cv.drainSeconds) 2 | int) -}}
{{- fail (printf "%s.terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds (%v) + drainSeconds (%v) by more than 2 seconds, or in-flight requests are killed; raise it" $c $cv.terminationGracePeriodSeconds $cv.preStopSleepSeconds $cv.drainSeconds) -}}
{{- end -}}
{{- end -}}
{{- range $c := list "gateway" "io" "compute" "video-worker" -}}
{{- $_ := include "panorama.plan" (dict "root" $ "component" $c) -}}
{{- end -}}
{{- end -}}
