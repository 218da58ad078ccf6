-- Cases for health.lua, run by ../../test.lua. Each object is what Argo CD hands the script
-- (decoded JSON: absent fields are nil, numbers are plain Lua numbers).

local ARC = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1"
  .. "/providers/Microsoft.Kubernetes/connectedClusters/arc1"

local function cond(ctype, status, reason, message, generation)
  return {
    type = ctype, status = status, reason = reason, message = message,
    observedGeneration = generation, lastTransitionTime = "2026-11-22T10:00:00Z",
  }
end

local function kcx(generation, status)
  return {
    apiVersion = "kubeinvoke.io/v1alpha1",
    kind = "KubeconfigExport",
    metadata = { name = "edge-01", namespace = "fleet", generation = generation },
    spec = {
      source = { hybrid = { connectedClusterResourceId = ARC, role = "User" } },
      secret = { name = "edge-01-kubeconfig", format = "Flux" },
    },
    status = status,
  }
end

local exported = 'kubeconfig "clusterUser" for https://10.0.0.4:6443 is in Secret edge-01-kubeconfig; '
  .. "next refresh at 2026-11-22T11:00:00Z"

-- The fields a successful export leaves in status (kept when a later fetch fails).
local function afterExport(g, reason, message, conditions)
  return {
    observedGeneration = g,
    secretName = "edge-01-kubeconfig",
    server = "https://10.0.0.4:6443",
    credentialName = "clusterUser",
    contentHash = "sha256:5f1c0a",
    lastRefreshTime = "2026-11-22T10:00:00Z",
    nextRefreshTime = "2026-11-22T11:00:00Z",
    reason = reason,
    message = message,
    conditions = conditions,
  }
end

-- A status before any successful export.
local function beforeExport(g, reason, message, conditions)
  return { observedGeneration = g, reason = reason, message = message, conditions = conditions }
end

local kept = "; last good kubeconfig kept in Secret edge-01-kubeconfig"

return {
  {
    name = "fresh object, no status yet",
    obj = kcx(1, nil),
    status = "Progressing", message = "Waiting for the operator",
  },
  {
    name = "status defaulted by the CRD (observedGeneration 0)",
    obj = kcx(1, { observedGeneration = 0 }),
    status = "Progressing", message = "Waiting for the operator to observe generation 1",
  },
  {
    name = "generation observed, no conditions yet",
    obj = kcx(1, { observedGeneration = 1, conditions = {} }),
    status = "Progressing", message = "Waiting for the operator",
  },
  {
    name = "first fetch under way",
    obj = kcx(1, beforeExport(1, "Refreshing", "fetching the kubeconfig through ARM", {
      cond("Ready", "False", "Refreshing", "fetching the kubeconfig through ARM", 1),
      cond("Reconciling", "True", "Refreshing", "fetching the kubeconfig through ARM", 1),
    })),
    status = "Progressing", message = "Refreshing: fetching the kubeconfig through ARM",
  },
  {
    name = "exported",
    obj = kcx(1, afterExport(1, "Exported", exported, {
      cond("Ready", "True", "Exported", exported, 1),
    })),
    status = "Healthy", message = "Exported: " .. exported,
  },
  {
    name = "scheduled refresh of a ready export stays healthy",
    obj = kcx(1, afterExport(1, "Refreshing", "fetching the kubeconfig again through ARM", {
      cond("Ready", "True", "Exported", exported, 1),
      cond("Reconciling", "True", "Refreshing", "fetching the kubeconfig again through ARM", 1),
    })),
    status = "Healthy", message = "Exported: " .. exported,
  },
  {
    name = "transient retry before the first export",
    obj = kcx(1, beforeExport(1, "Retrying", "ARM answered 503", {
      cond("Ready", "False", "Retrying", "ARM answered 503", 1),
      cond("Reconciling", "True", "Retrying", "ARM answered 503", 1),
    })),
    status = "Progressing", message = "Retrying: ARM answered 503",
  },
  {
    name = "transient retry while the last good Secret is kept",
    obj = kcx(1, afterExport(1, "Throttled", "ARM answered 429; retrying after 10s", {
      cond("Ready", "False", "Throttled", "ARM answered 429; retrying after 10s", 1),
      cond("Reconciling", "True", "Throttled", "ARM answered 429; retrying after 10s", 1),
    })),
    status = "Progressing", message = "Throttled: ARM answered 429; retrying after 10s" .. kept,
  },
  {
    name = "stalled before the first export",
    obj = kcx(1, beforeExport(1, "Forbidden", "missing action listUserKubeconfig/action", {
      cond("Ready", "False", "Forbidden", "missing action listUserKubeconfig/action", 1),
      cond("Stalled", "True", "Forbidden", "missing action listUserKubeconfig/action", 1),
    })),
    status = "Degraded", message = "Forbidden: missing action listUserKubeconfig/action",
  },
  {
    name = "stalled after an earlier export",
    obj = kcx(1, afterExport(1, "InvalidKubeconfig", "ARM returned a kubeconfig without clusters", {
      cond("Ready", "False", "InvalidKubeconfig", "ARM returned a kubeconfig without clusters", 1),
      cond("Stalled", "True", "InvalidKubeconfig", "ARM returned a kubeconfig without clusters", 1),
    })),
    status = "Degraded", message = "InvalidKubeconfig: ARM returned a kubeconfig without clusters" .. kept,
  },
  {
    name = "stalled: Secret owned by someone else",
    obj = kcx(2, beforeExport(2, "SecretConflict", "Secret edge-01-kubeconfig exists and is not owned by this export", {
      cond("Ready", "False", "SecretConflict", "Secret edge-01-kubeconfig exists and is not owned by this export", 2),
      cond("Stalled", "True", "SecretConflict", "Secret edge-01-kubeconfig exists and is not owned by this export", 2),
    })),
    status = "Degraded",
    message = "SecretConflict: Secret edge-01-kubeconfig exists and is not owned by this export",
  },
  {
    name = "Ready=False with neither Reconciling nor Stalled",
    obj = kcx(1, afterExport(1, "ArmOperationFailed", "listUserKubeconfig failed", {
      cond("Ready", "False", "ArmOperationFailed", "listUserKubeconfig failed", 1),
    })),
    status = "Degraded", message = "ArmOperationFailed: listUserKubeconfig failed" .. kept,
  },
  {
    name = "Ready=Unknown",
    obj = kcx(1, beforeExport(1, nil, nil, { cond("Ready", "Unknown", "Pending", "", 1) })),
    status = "Progressing", message = "Waiting for the operator",
  },
  {
    name = "spec changed after export: new generation not observed yet",
    obj = kcx(2, afterExport(1, "Exported", exported, { cond("Ready", "True", "Exported", exported, 1) })),
    status = "Progressing", message = "Waiting for the operator to observe generation 2",
  },
  {
    name = "conditions still from the previous generation",
    obj = kcx(2, afterExport(2, "Exported", exported, { cond("Ready", "True", "Exported", exported, 1) })),
    status = "Progressing", message = "Waiting for the operator to update the conditions",
  },
  {
    name = "Stalled=False and Ready=True",
    obj = kcx(3, afterExport(3, "Exported", exported, {
      cond("Ready", "True", "Exported", exported, 3),
      cond("Stalled", "False", "Exported", exported, 3),
    })),
    status = "Healthy", message = "Exported: " .. exported,
  },
}
