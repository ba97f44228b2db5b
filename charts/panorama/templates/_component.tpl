{{/*
The objects every Panorama component has (ConfigMap, Deployment, Service, HPA, PDB), written
once and included from templates/<component>/<kind>.yaml with (dict "root" $ "component" "io").

What differs between the components is data, in "panorama.facts"; the templates below read the
facts of their component and never test its name.
*/}}

{{- define "panorama.ports" -}}
{{- $ports := dict "gateway" 8000 "io" 8001 "compute" 8002 -}}
{{- index $ports . -}}
{{- end -}}

{{/*
Per-component facts:
  http      serves HTTP on its panorama.ports port (else: a Celery worker with a metrics port)
  module    the Python package under panorama.
  storage   mounts the shared video volume
  secrets   Secret-backed env: apiKeys, internalToken
  needs     env of the dependencies it uses: database, redis, broker (RabbitMQ, when the chart uses it)
  calls     the components whose URL it is given (PANORAMA_<NAME>_URL)
  settings  ConfigMap entries from its values: env name -> values field
*/}}
{{- define "panorama.facts" -}}
gateway:
  http: true
  module: gateway
  storage: true
  secrets: [apiKeys, internalToken]
  needs: [redis, broker]
  calls: [io, compute]
  settings:
    PANORAMA_UPSTREAM_CONNECTIONS: upstreamConnections
    PANORAMA_MAX_UPLOAD_BYTES: maxUploadBytes
    PANORAMA_RATE_LIMIT: rateLimit
    PANORAMA_METRICS_PORT: metricsPort
    PANORAMA_AUTH_FAILURE_LIMIT: authFailureLimit
    # Whose X-Forwarded-For is believed: the wrong-key limit counts per client address.
    FORWARDED_ALLOW_IPS: forwardedAllowIps
io:
  http: true
  module: io
  storage: false
  secrets: [internalToken]
  needs: [database, redis]
  calls: []
  settings:
    PANORAMA_DEMO_ANTIPATTERNS: demoAntipatterns
    PANORAMA_PROXY_ALLOW_HOSTS: proxyAllowHosts
compute:
  http: true
  module: compute
  storage: false
  secrets: [internalToken]
  needs: []
  calls: []
  settings: {}
video-worker:
  http: false
  module: video_worker
  storage: true
  secrets: []
  needs: [redis, broker]
  calls: [io]
  settings:
    PANORAMA_WORKER_METRICS_PORT: metricsPort
{{- end -}}

{{/* The facts of one component, as a dict: include "panorama.component" . | fromYaml */}}
{{- define "panorama.component" -}}
{{- index (include "panorama.facts" . | fromYaml) .component | toYaml -}}
{{- end -}}

{{/* The URL a component is reached at inside the release: (dict "root" $ "component" "io") */}}
{{- define "panorama.url" -}}
{{- printf "http://%s:%s" (include "panorama.componentName" .) (include "panorama.ports" .component) -}}
{{- end -}}

{{/* The command each container runs: the same one the Dockerfile's entrypoint holds. */}}
{{- define "panorama.command" -}}
{{- $c := include "panorama.component" . | fromYaml -}}
{{- if $c.http }}
- gunicorn
- -c
- python:panorama.core.gunicorn_conf
- --bind
- 0.0.0.0:{{ include "panorama.ports" .component }}
- panorama.{{ $c.module }}.app:create_app()
{{- else }}
- celery
- -A
- panorama.{{ $c.module }}.celery_app
- worker
- --loglevel
- {{ .root.Values.logLevel }}
{{- end }}
{{- end -}}

{{/* Celery's ping to this pod's own node (celery@<hostname>) over the broker: exit 0 when it answers. */}}
{{- define "panorama.workerPing" -}}
[python, -c, "import socket, sys; from panorama.video_worker.celery_app import app; sys.exit(0 if app.control.ping([f'celery@{socket.gethostname()}'], timeout=5) else 1)"]
{{- end -}}

{{- define "panorama.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .gid | default 0 }}
fsGroup: {{ .fsGroup | default 10001 }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "panorama.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Non-secret settings of a component; the Deployment loads them with envFrom. */}}
{{- define "panorama.configmap" -}}
{{- $root := .root -}}
{{- $c := include "panorama.component" . | fromYaml -}}
{{- $v := index $root.Values (include "panorama.valuesKey" .component) -}}
{{- $otel := include "panorama.otelEndpoint" $root -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "panorama.componentName" . }}
  labels:
    {{- include "panorama.labels" . | nindent 4 }}
data:
  {{- include "panorama.sizingEnv" . | nindent 2 }}
  PANORAMA_LOG_LEVEL: {{ $root.Values.logLevel | quote }}
  PANORAMA_LOG_JSON: "true"
  PANORAMA_STATE_DIR: /tmp/panorama
  {{- /* gunicorn workers (and Celery children) write their samples here; /metrics sums them (emptyDir "metrics"). */}}
  PROMETHEUS_MULTIPROC_DIR: /run/metrics
  {{- if $c.storage }}
  PANORAMA_STORAGE_DIR: /data/videos
  {{- end }}
  {{- if $c.http }}
  {{- /*
  Kubernetes runs preStop, then sends SIGTERM; gunicorn then drains (readiness 503, still serving) for
  drainSeconds and must finish in what is left of the grace period. preStop already covers the
  endpoint removal, so drainSeconds defaults to 0: the two waits add up, they are not one.
  */}}
  PANORAMA_DRAIN_SECONDS: {{ $v.drainSeconds | toString | quote }}
  PANORAMA_GRACEFUL_TIMEOUT: {{ sub (sub (sub $v.terminationGracePeriodSeconds $v.preStopSleepSeconds) $v.drainSeconds) 2 | toString | quote }}
  {{- /* gunicorn's control socket goes to $XDG_RUNTIME_DIR, else $HOME: the root file system is read-only. */}}
  XDG_RUNTIME_DIR: /tmp
  {{- end }}
  {{- range $name, $field := $c.settings }}
  {{- $value := index $v $field }}
  {{- /* YAML numbers arrive as floats: 1073741824 must not become 1.073741824e+09. */}}
  {{- if kindIs "float64" $value }}{{ $value = int64 $value }}{{ end }}
  {{ $name }}: {{ $value | toString | quote }}
  {{- end }}
  {{- range $c.calls }}
  {{ printf "PANORAMA_%s_URL" (upper .) }}: {{ include "panorama.url" (dict "root" $root "component" .) | quote }}
  {{- end }}
  OTEL_SERVICE_NAME: {{ printf "panorama-%s" .component | quote }}
  OTEL_RESOURCE_ATTRIBUTES: {{ printf "service.namespace=%s,deployment.environment=%s" $root.Release.Namespace $root.Release.Name | quote }}
  {{- if $otel }}
  OTEL_EXPORTER_OTLP_ENDPOINT: {{ $otel | quote }}
  OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf
  OTEL_TRACES_SAMPLER: parentbased_traceidratio
  OTEL_TRACES_SAMPLER_ARG: {{ $root.Values.otel.sampleRatio | toString | quote }}
  {{- else }}
  OTEL_SDK_DISABLED: "true"
  {{- end }}
{{- end -}}

{{/* Secret-backed env of a component, from its secrets and needs facts. */}}
{{- define "panorama.env" -}}
{{- $root := .root -}}
{{- $c := include "panorama.component" . | fromYaml -}}
{{- if has "apiKeys" $c.secrets }}
- name: PANORAMA_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "panorama.apiKeysSecret" $root }}
      key: api-keys
{{- end }}
{{- if has "internalToken" $c.secrets }}
{{- /* The gateway sends it; io and compute refuse callers without it. */}}
- name: PANORAMA_INTERNAL_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "panorama.internalTokenSecret" $root }}
      key: internal-token
{{- end }}
{{- if has "database" $c.needs }}
{{- include "panorama.databaseEnv" $root | nindent 0 }}
{{- end }}
{{- if has "redis" $c.needs }}
{{- include "panorama.redisEnv" $root | nindent 0 }}
{{- end }}
{{- if has "broker" $c.needs }}
{{- include "panorama.brokerEnv" $root | nindent 0 }}
{{- end }}
{{- end -}}

{{- define "panorama.containerPorts" -}}
{{- $c := include "panorama.component" . | fromYaml -}}
{{- $v := index .root.Values (include "panorama.valuesKey" .component) -}}
{{- if $c.http -}}
- name: http
  containerPort: {{ include "panorama.ports" .component }}
  protocol: TCP
{{- with $v.metricsPort }}
{{- /* The gunicorn master serves every worker's samples here, never on the public port. */}}
- name: metrics
  containerPort: {{ . }}
  protocol: TCP
{{- end }}
{{- else -}}
{{- /* The prefork parent serves the whole pod's /metrics here (children's samples aggregated). */}}
- name: metrics
  containerPort: {{ (index .root.Values (include "panorama.valuesKey" .component)).metricsPort }}
  protocol: TCP
{{- end -}}
{{- end -}}

{{/* Probes: /healthz and /readyz for an HTTP service, Celery's ping for a worker. */}}
{{- define "panorama.probes" -}}
{{- $c := include "panorama.component" . | fromYaml -}}
{{- if $c.http -}}
{{- /* Liveness is the process alone: a dead dependency must not restart healthy pods. */}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 2
  timeoutSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 2
  failureThreshold: 3
{{- /* /readyz bounds each dependency check by PANORAMA_READINESS_TIMEOUT (2 s). */}}
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- else -}}
{{- /* The worker has no HTTP API: Celery's own ping over the broker says it consumes. */}}
startupProbe:
  exec:
    command: {{ include "panorama.workerPing" . }}
  periodSeconds: 10
  timeoutSeconds: 15
  failureThreshold: 12
readinessProbe:
  exec:
    command: {{ include "panorama.workerPing" . }}
  periodSeconds: 60
  timeoutSeconds: 15
  failureThreshold: 3
{{- /*
No livenessProbe: the only liveness signal Celery offers (inspect ping) goes through the
broker, so it would restart healthy workers whenever Redis blips; a crashed main process
ends the container (it is PID 1) and hung jobs are bounded by the task time limits.
*/}}
{{- end -}}
{{- end -}}

{{- define "panorama.volumeMounts" -}}
{{- $c := include "panorama.component" . | fromYaml -}}
- name: tmp
  mountPath: /tmp
- name: metrics
  mountPath: /run/metrics
{{- if $c.storage }}
- name: videos
  mountPath: /data/videos
{{- end }}
{{- end -}}

{{- define "panorama.volumes" -}}
{{- $c := include "panorama.component" . | fromYaml -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- /* Its own emptyDir: per-process sample files, wiped with the pod (stale ones are cleared at start). */}}
- name: metrics
  emptyDir:
    sizeLimit: 64Mi
{{- if $c.storage }}
- name: videos
  persistentVolumeClaim:
    claimName: {{ include "panorama.storageClaim" .root }}
{{- end }}
{{- end -}}

{{- define "panorama.deployment" -}}
{{- $root := .root -}}
{{- $c := include "panorama.component" . | fromYaml -}}
{{- $v := index $root.Values (include "panorama.valuesKey" .component) -}}
{{- $http := $c.http -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "panorama.componentName" . }}
  labels:
    {{- include "panorama.labels" . | nindent 4 }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "panorama.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "panorama.labels" . | nindent 8 }}
      annotations:
        checksum/config: {{ include "panorama.configmap" . | sha256sum }}
        panorama.dev/plan: {{ include "panorama.planSummary" . | quote }}
        {{- if $root.Values.metrics.scrapeAnnotations }}
        prometheus.io/scrape: "true"
        {{- /* A component with a metricsPort (gateway, worker) serves /metrics there only. */}}
        prometheus.io/port: {{ $v.metricsPort | default (include "panorama.ports" .component) | toString | quote }}
        prometheus.io/path: /metrics
        {{- end }}
    spec:
      {{- include "panorama.imagePullSecrets" $root | nindent 6 }}
      automountServiceAccountToken: false
      securityContext:
        {{- include "panorama.podSecurityContext" dict | nindent 8 }}
      {{- if $http }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- else }}
      {{- /* Celery's warm shutdown waits for running jobs: the grace must cover the longest one. */}}
      terminationGracePeriodSeconds: {{ add $v.longestJobSeconds $v.preStopSleepSeconds 30 }}
      {{- end }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "panorama.selectorLabels" . | nindent 14 }}
      containers:
        - name: {{ .component }}
          image: {{ include "panorama.image" . | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            {{- include "panorama.command" . | nindent 12 }}
          envFrom:
            - configMapRef:
                name: {{ include "panorama.componentName" . }}
          env:
            {{- include "panorama.env" . | nindent 12 }}
          ports:
            {{- include "panorama.containerPorts" . | nindent 12 }}
          {{- include "panorama.probes" . | nindent 10 }}
          lifecycle:
            preStop:
              exec:
                command: [sleep, {{ $v.preStopSleepSeconds | toString | quote }}]
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- include "panorama.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            {{- include "panorama.volumeMounts" . | nindent 12 }}
      volumes:
        {{- include "panorama.volumes" . | nindent 8 }}
{{- end -}}

{{- define "panorama.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "panorama.componentName" . }}
  labels:
    {{- include "panorama.labels" . | nindent 4 }}
spec:
  type: {{ .type | default "ClusterIP" }}
  selector:
    {{- include "panorama.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ include "panorama.ports" .component }}
      targetPort: http
      protocol: TCP
{{- end -}}

{{- define "panorama.hpa" -}}
{{- $v := index .root.Values (include "panorama.valuesKey" .component) -}}
{{- if $v.autoscaling.enabled -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "panorama.componentName" . }}
  labels:
    {{- include "panorama.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "panorama.componentName" . }}
  minReplicas: {{ $v.autoscaling.minReplicas }}
  maxReplicas: {{ $v.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $v.autoscaling.targetCPUUtilization }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
{{- end -}}
{{- end -}}

{{- define "panorama.pdb" -}}
{{- $v := index .root.Values (include "panorama.valuesKey" .component) -}}
{{- if $v.pdb.enabled -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "panorama.componentName" . }}
  labels:
    {{- include "panorama.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ $v.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "panorama.selectorLabels" . | nindent 6 }}
{{- end -}}
{{- end -}}
