{{/*
Named templates. The tests render the chart with real Helm (tests/support/helm.rs).
*/}}

{{- define "kubeinvoke.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name when it already contains the chart name, else "<release>-<chart>". */}}
{{- define "kubeinvoke.fullname" -}}
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

{{- define "kubeinvoke.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeinvoke.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubeinvoke.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kubeinvoke.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kubeinvoke.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubeinvoke.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The namespaces the operator watches, as a JSON list: watchNamespaces, plus watchNamespace (its
one-namespace form) when set. Empty: all namespaces.
*/}}
{{- define "kubeinvoke.watchNamespaces" -}}
{{- $list := concat (.Values.watchNamespaces | default list) (compact (list .Values.watchNamespace)) -}}
{{- toJson (uniq $list) -}}
{{- end }}

{{/* What the operator does through the Kubernetes API in a watched namespace (clusterrole.yaml). */}}
{{- define "kubeinvoke.operatorRules" -}}
  # Watch RemoteCommands; read one again before writing a late result (get); delete a finished
  # one past spec.ttlSecondsAfterFinished; create a RemoteCommandSet's children (one per target).
  - apiGroups: [kubeinvoke.io]
    resources: [remotecommands]
    verbs: [get, list, watch, create, delete]
  # Watch KubeconfigExports; create, change (server-side apply) and delete the ones a
  # KubeconfigExportSet controls (one per cluster its selector finds).
  - apiGroups: [kubeinvoke.io]
    resources: [kubeconfigexports]
    verbs: [list, watch, create, patch, delete]
  # Watch the fleet kinds (the reconcilers read them from the watch cache).
  - apiGroups: [kubeinvoke.io]
    resources: [remotecommandsets, kubeconfigexportsets]
    verbs: [list, watch]
  # Status is written with server-side apply only.
  - apiGroups: [kubeinvoke.io]
    resources: [remotecommands/status, kubeconfigexports/status, remotecommandsets/status, kubeconfigexportsets/status]
    verbs: [patch]
  # Read credential and file Secrets; write output and kubeconfig Secrets with server-side apply
  # (create for the first write); delete a kubeconfig Secret the export owns when its name or type
  # changes. Never list or watch: Secrets are read one by one, by name.
  - apiGroups: [""]
    resources: [secrets]
    verbs: [get, create, patch, delete]
  # Workload identity: a short-lived token of the ServiceAccount a credential Secret names
  # (AZURE_SERVICE_ACCOUNT), in that Secret's namespace, for Entra ID's token exchange — once the
  # ServiceAccount, read by name, shows its owner opted in (azure.workload.identity/client-id).
  - apiGroups: [""]
    resources: [serviceaccounts]
    verbs: [get]
  - apiGroups: [""]
    resources: [serviceaccounts/token]
    verbs: [create]
  # RemoteCommand spec.files from ConfigMaps.
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get]
  # Events: created once, then patched as a series when they repeat (kube Recorder).
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
{{- end }}
