-- Cases for health.lua, run by ../../test.lua: a KubeconfigExportSet as the operator writes its
-- status.

local function cond(ctype, status, reason, message, generation)
  return {
    type = ctype, status = status, reason = reason, message = message,
    observedGeneration = generation, lastTransitionTime = "2026-12-05T10:00:00Z",
  }
end

local function set(generation, status)
  return {
    apiVersion = "kubeinvoke.io/v1alpha1",
    kind = "KubeconfigExportSet",
    metadata = { name = "prod-clusters", namespace = "argocd", generation = generation },
    spec = {
      selector = { subscriptions = { "00000000-0000-0000-0000-000000000000" }, matchTags = { env = "prod" } },
      template = { secret = { format = "ArgoCD" } },
    },
    status = status,
  }
end

local function st(g, reason, message, conditions)
  return {
    observedGeneration = g, reason = reason, message = message, conditions = conditions,
    clusters = 12, ready = 12,
  }
end

local exported = "12 clusters, 12 exports ready"
local fetching = "12 clusters, 4 exports ready, 8 being fetched"
local failed = "12 clusters, 10 exports ready, 2 failed (status.failedClusters)"
local forbidden = "listing /subscriptions/11111111-1111-1111-1111-111111111111: the operator's identity is not granted to namespace argocd"
local throttled = "listing /subscriptions/00000000-0000-0000-0000-000000000000: ARM answered 429; retrying in 20s"

return {
  {
    name = "fresh object, no status yet",
    obj = set(1, nil),
    status = "Progressing", message = "Waiting for the operator",
  },
  {
    name = "status for an older generation",
    obj = set(2, st(1, "Exported", exported, { cond("Ready", "True", "Exported", exported, 1) })),
    status = "Progressing", message = "Waiting for the operator to observe generation 2",
  },
  {
    name = "exports being fetched",
    obj = set(1, st(1, "Refreshing", fetching, {
      cond("Ready", "False", "Refreshing", fetching, 1), cond("Reconciling", "True", "Refreshing", fetching, 1),
      cond("Discovered", "True", "Listed", "12 clusters", 1),
    })),
    status = "Progressing", message = "Refreshing: " .. fetching,
  },
  {
    name = "every export ready",
    obj = set(1, st(1, "Exported", exported, {
      cond("Ready", "True", "Exported", exported, 1), cond("Discovered", "True", "Listed", "12 clusters", 1),
    })),
    status = "Healthy", message = "Exported: " .. exported,
  },
  {
    name = "some exports failed",
    obj = set(1, st(1, "ExportsFailed", failed, {
      cond("Ready", "False", "ExportsFailed", failed, 1), cond("Reconciling", "True", "ExportsFailed", failed, 1),
    })),
    status = "Degraded", message = "ExportsFailed: " .. failed,
  },
  {
    name = "some exports failed, without a Stalled condition or Reconciling",
    obj = set(1, st(1, "ExportsFailed", failed, { cond("Ready", "False", "ExportsFailed", failed, 1) })),
    status = "Degraded", message = "ExportsFailed: " .. failed,
  },
  {
    name = "a scope outside the grant",
    obj = set(1, st(1, "Forbidden", forbidden, {
      cond("Ready", "False", "Forbidden", forbidden, 1), cond("Stalled", "True", "Forbidden", forbidden, 1),
      cond("Discovered", "False", "Forbidden", forbidden, 1),
    })),
    status = "Degraded", message = "Forbidden: " .. forbidden,
  },
  {
    name = "a bad namePattern",
    obj = set(3, st(3, "InvalidSpec", "template.secret.namePattern: unknown placeholder {cluster}", {
      cond("Ready", "False", "InvalidSpec", "template.secret.namePattern: unknown placeholder {cluster}", 3),
      cond("Stalled", "True", "InvalidSpec", "template.secret.namePattern: unknown placeholder {cluster}", 3),
    })),
    status = "Degraded", message = "InvalidSpec: template.secret.namePattern: unknown placeholder {cluster}",
  },
  {
    name = "a listing throttled and retried",
    obj = set(1, st(1, "Throttled", throttled, {
      cond("Ready", "False", "Throttled", throttled, 1), cond("Reconciling", "True", "Throttled", throttled, 1),
      cond("Discovered", "False", "Throttled", throttled, 1),
    })),
    status = "Progressing", message = "Throttled: " .. throttled,
  },
  {
    name = "a credential awaited",
    obj = set(1, st(1, "CredentialNotFound", "Secret kubeinvoke-credentials not found", {
      cond("Ready", "False", "CredentialNotFound", "Secret kubeinvoke-credentials not found", 1),
      cond("Reconciling", "True", "CredentialNotFound", "Secret kubeinvoke-credentials not found", 1),
    })),
    status = "Progressing", message = "CredentialNotFound: Secret kubeinvoke-credentials not found",
  },
  {
    name = "conditions of an older generation are not believed",
    obj = set(2, st(2, "Refreshing", fetching, { cond("Ready", "True", "Exported", exported, 1) })),
    status = "Progressing", message = "Refreshing: " .. fetching,
  },
}
