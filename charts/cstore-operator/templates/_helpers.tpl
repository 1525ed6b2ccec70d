{{/* The chart name, unless overridden. */}}
{{- define "cstore-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's objects: the release name when it already holds the chart name. */}}
{{- define "cstore-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cstore-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cstore-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cstore-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cstore-operator.labels" -}}
helm.sh/chart: {{ include "cstore-operator.chart" . }}
{{ include "cstore-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: cstore
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "cstore-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cstore-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest, or repository:tag (the tag defaults to appVersion). */}}
{{- define "cstore-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs where its stores live, exactly what it calls (src/operator/):
- concurrentstores: list and watch (its controller and the start-up CRD check); it never gets,
  updates or deletes a store, and adds no finalizer.
- concurrentstores/status: patch (server-side apply of the status).
- configmaps, services, deployments, poddisruptionbudgets: list and watch (owned objects),
  get (drift check), create and patch (server-side apply: creating through apply is
  authorized as create); delete for poddisruptionbudgets only (removed on a scale to one).
- persistentvolumeclaims: get (drift check), create and patch (server-side apply of a store's
  data claim). No list or watch: a retained claim has no owner reference for a watch to map
  back to its store, and a periodic reconcile repairs it. No delete: the operator never
  deletes data; with whenDeleted: Delete the garbage collector removes the claim with the
  store, through its owner reference.
- events.k8s.io events: create, and patch for a repeated event's series.
- pods: list only, by the store's selector, to find each pod's IP and send it the live settings
  (CONFIG SET); no watch (a reconfiguration is polled) and no get.
- secrets: get only, of the Secret a store's spec.auth names, for the password the operator
  needs to AUTH to the store's pods before CONFIG SET. The names are the users' own, so
  resourceNames cannot narrow it; never list or watch (that would read every Secret).
*/}}
{{- define "cstore-operator.storeRules" -}}
- apiGroups: ["cstore.dev"]
  resources: ["concurrentstores"]
  verbs: ["list", "watch"]
- apiGroups: ["cstore.dev"]
  resources: ["concurrentstores/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
