{{/*
Sizing: the rules of panorama.core.sizing.plan, applied to each component's CPU limit, so the
numbers the chart renders (WEB_CONCURRENCY, pool env vars, the plan annotation) are the numbers
each pod computes at start-up. charts/tests/test_sizing.py checks both agree for several limits.

- cores       = round-half-up(limits.cpu), at least 1
- workers     = the component's `workers` value, else cores
- process pool = cores // workers, at least 1
- celery      = the video worker's `concurrency` value, else cores
- thread tokens = sync pool size
- connections = replicas (HPA maximum) x workers x (pool + overflow + sync) must fit
                max_connections - reserved, else `fail` with how much is over.

A component holds database connections when its facts (panorama.facts in _component.tpl) list
"database" in its needs: only io (its settings declare database_url; core.sizing.plan is called
with database=True), so only io is given the database's budget and checked against it. gateway,
compute and the video worker plan with database=False: no pools, no connections, nothing to fit,
whatever their CPU limit; their thread tokens are core's default sync pool size (10). Like
_component.tpl, these templates read their component's facts and never test its name.
*/}}

{{/* CPU quantity -> decimal CPUs: "500m" -> 0.5, "1.5" -> 1.5, 2 -> 2 */}}
{{- define "panorama.cpu" -}}
{{- $q := toString . -}}
{{- if hasSuffix "m" $q -}}
{{- divf (trimSuffix "m" $q | float64) 1000 -}}
{{- else -}}
{{- $q | float64 -}}
{{- end -}}
{{- end -}}

{{/*
The plan of one component as JSON: (dict "root" $ "component" "io").
Fails the render when the CPU limit is missing or the connections exceed the budget.
*/}}
{{- define "panorama.plan" -}}
{{- $root := .root -}}
{{- $c := include "panorama.component" . | fromYaml -}}
{{- $key := include "panorama.valuesKey" .component -}}
{{- $v := index $root.Values $key -}}
{{- $limits := (($v.resources).limits) | default dict -}}
{{- if not (hasKey $limits "cpu") -}}
{{- fail (printf "%s.resources.limits.cpu is required: worker counts and pool sizes are derived from it (e.g. set it to \"1\")" $key) -}}
{{- end -}}
{{- $cpu := include "panorama.cpu" $limits.cpu | float64 -}}
{{- if le $cpu 0.0 -}}
{{- fail (printf "%s.resources.limits.cpu must be a positive number of CPUs, got %v" $key $limits.cpu) -}}
{{- end -}}
{{- $cores := max 1 (int (floor (addf $cpu 0.5))) | int -}}
{{- $workers := $cores -}}
{{- if and (hasKey $v "workers") (not (kindIs "invalid" $v.workers)) -}}
{{- $workers = int $v.workers -}}
{{- end -}}
{{- $processPool := max 1 (div $cores $workers) | int -}}
{{- $celery := $cores -}}
{{- if and (hasKey $v "concurrency") (not (kindIs "invalid" $v.concurrency)) -}}
{{- $celery = int $v.concurrency -}}
{{- end -}}
{{- $replicas := 1 -}}
{{- $maxConnections := 100 -}}
{{- $reserved := 10 -}}
{{- $pool := 5 -}}
{{- $overflow := 5 -}}
{{- $sync := 10 -}}
{{- $database := has "database" $c.needs -}}
{{- if $database -}}
{{- $replicas = ternary $v.autoscaling.maxReplicas $v.replicas $v.autoscaling.enabled | int -}}
{{- $maxConnections = int $root.Values.database.maxConnections -}}
{{- $reserved = int $root.Values.database.reservedConnections -}}
{{- $pool = int $v.dbPoolSize -}}
{{- $overflow = int $v.dbMaxOverflow -}}
{{- $sync = int $v.syncPoolSize -}}
{{- end -}}
{{- $threadTokens := max 1 $sync | int -}}
{{- $perWorker := 0 -}}
{{- $total := 0 -}}
{{- $budget := sub $maxConnections $reserved | int -}}
{{- if $database -}}
{{- $perWorker = add $pool $overflow $sync | int -}}
{{- $total = mul $replicas $workers $perWorker | int -}}
{{- if gt $total $budget -}}
{{- fail (printf "%s: the plan needs %d database connections (%d replicas at the HPA maximum x %d workers x (%d pool + %d overflow + %d sync)) but the budget is %d (database.maxConnections %d - database.reservedConnections %d): over by %d. Lower %s.autoscaling.maxReplicas, %s.workers or %s.resources.limits.cpu, %s.dbPoolSize, %s.dbMaxOverflow or %s.syncPoolSize, or raise database.maxConnections." $key $total $replicas $workers $pool $overflow $sync $budget $maxConnections $reserved (sub $total $budget) $key $key $key $key $key $key) -}}
{{- end -}}
{{- else -}}
{{/* No database: no pools (core's Plan reports 0 for each). */}}
{{- $pool = 0 -}}
{{- $overflow = 0 -}}
{{- $sync = 0 -}}
{{- end -}}
{{- dict "cpuLimit" $cpu "cores" $cores "workers" $workers "processPoolSize" $processPool "celeryConcurrency" $celery "threadTokens" $threadTokens "replicas" $replicas "dbPoolSize" $pool "dbMaxOverflow" $overflow "syncPoolSize" $sync "connectionsPerWorker" $perWorker "connectionsTotal" $total "connectionBudget" $budget "maxConnections" $maxConnections "reservedConnections" $reserved "database" $database | toJson -}}
{{- end -}}

{{/* The sizing env of one component, from its plan: (dict "root" $ "component" "io") */}}
{{- define "panorama.sizingEnv" -}}
{{- $plan := include "panorama.plan" . | fromJson -}}
{{- $c := include "panorama.component" . | fromYaml -}}
{{- $v := index .root.Values (include "panorama.valuesKey" .component) -}}
PANORAMA_CPU_LIMIT: {{ $plan.cpuLimit | toString | quote }}
{{- if $c.http }}
WEB_CONCURRENCY: {{ $plan.workers | int | toString | quote }}
{{- else }}
{{- /* A Celery worker (the video worker): its children, and the time limits of its jobs. */}}
PANORAMA_CELERY_CONCURRENCY: {{ $plan.celeryConcurrency | int | toString | quote }}
{{- /* The worker's own limits follow longestJobSeconds, which also sets its grace period: a job
     that outlives them is stopped (soft) or killed (hard) before the kubelet's SIGKILL, and Redis
     redelivers an unacked job only after both. */}}
{{- $longest := int $v.longestJobSeconds }}
PANORAMA_VIDEO_SOFT_TIME_LIMIT: {{ sub $longest 30 | toString | quote }}
PANORAMA_VIDEO_TIME_LIMIT: {{ $longest | toString | quote }}
PANORAMA_VISIBILITY_TIMEOUT: {{ add $longest 300 | toString | quote }}
{{- end }}
{{- if $plan.database }}
PANORAMA_REPLICAS: {{ $plan.replicas | int | toString | quote }}
PANORAMA_DB_MAX_CONNECTIONS: {{ $plan.maxConnections | int | toString | quote }}
PANORAMA_DB_RESERVED_CONNECTIONS: {{ $plan.reservedConnections | int | toString | quote }}
PANORAMA_DB_POOL_SIZE: {{ $plan.dbPoolSize | int | toString | quote }}
PANORAMA_DB_MAX_OVERFLOW: {{ $plan.dbMaxOverflow | int | toString | quote }}
PANORAMA_SYNC_POOL_SIZE: {{ $plan.syncPoolSize | int | toString | quote }}
{{- end }}
{{- end -}}

{{/* A one-line summary for the pod annotation panorama.dev/plan. */}}
{{- define "panorama.planSummary" -}}
{{- $p := include "panorama.plan" . | fromJson -}}
{{- printf "cpu=%v workers=%d process_pool=%d celery=%d thread_tokens=%d connections=%d/%d" $p.cpuLimit (int $p.workers) (int $p.processPoolSize) (int $p.celeryConcurrency) (int $p.threadTokens) (int $p.connectionsTotal) (int $p.connectionBudget) -}}
{{- end -}}
