{{/* Name of the chart, overridable. */}}
{{- define "sales-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: the release name when it already contains the chart name. */}}
{{- define "sales-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "sales-operator.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "sales-operator.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sales-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sales-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sales-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sales-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "sales-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sales-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sales-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The permissions the operator uses in every namespace it watches; nothing else.
Kept equal to KUBERNETES_PERMISSIONS in src/controller/mod.rs by tests/chart.rs.
*/}}
{{- define "sales-operator.watchRules" -}}
- apiGroups: ["sales-operator.dev"]
  resources: ["salespipelines"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["sales-operator.dev"]
  resources: ["salespipelines/status"]
  verbs: ["patch"]
# OrderGenerators and the Deployment each one owns (garbage-collected with it: no delete).
- apiGroups: ["sales-operator.dev"]
  resources: ["ordergenerators"]
  verbs: ["list", "watch"]
- apiGroups: ["sales-operator.dev"]
  resources: ["ordergenerators/status"]
  verbs: ["patch"]
# Server-side apply of a Deployment that does not exist yet needs create besides patch.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch"]
# An Event on the custom resource for each AWS create/update/delete.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* Cluster-wide, whatever namespaces are watched: the AwsIdentities, and the labels of a
pipeline's namespace for their namespaceSelector. */}}
{{- define "sales-operator.identityRules" -}}
- apiGroups: ["sales-operator.dev"]
  resources: ["awsidentities"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get"]
{{- end -}}

{{/* Leader election, in the release namespace only. */}}
{{- define "sales-operator.leaseRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "patch"]
{{- end -}}

{{/* Labels of the CRDs (templates/crds.yaml): the chart's, without the operator's selector. */}}
{{- define "sales-operator.crdLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "sales-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: crds
{{- end -}}
