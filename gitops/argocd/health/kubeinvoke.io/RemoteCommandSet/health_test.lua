-- Cases for health.lua, run by ../../test.lua: a fleet run as the operator writes its status.

local function cond(ctype, status, reason, message, generation)
  return {
    type = ctype, status = status, reason = reason, message = message,
    observedGeneration = generation, lastTransitionTime = "2026-12-05T10:00:00Z",
  }
end

local function set(generation, status)
  return {
    apiVersion = "kubeinvoke.io/v1alpha1",
    kind = "RemoteCommandSet",
    metadata = { name = "patch-openssl", namespace = "fleet", generation = generation },
    spec = { template = { command = "true" }, targets = { resourceIds = {} } },
    status = status,
  }
end

local function st(g, reason, message, conditions)
  return { observedGeneration = g, reason = reason, message = message, conditions = conditions }
end

local running = "4 active, 10 succeeded, 0 failed, 6 not started"
local done = "all 20 targets succeeded"
local tooMany = "2 targets failed, more than maxErrors allows; 18 not started"

return {
  {
    name = "fresh object, no status yet",
    obj = set(1, nil),
    status = "Progressing", message = "Waiting for the operator",
  },
  {
    name = "status for an older generation",
    obj = set(2, st(1, "Completed", done, { cond("Ready", "True", "Completed", done, 1) })),
    status = "Progressing", message = "Waiting for the operator to observe generation 2",
  },
  {
    name = "running",
    obj = set(1, st(1, "Running", running, {
      cond("Ready", "False", "Running", running, 1), cond("Reconciling", "True", "Running", running, 1),
    })),
    status = "Progressing", message = "Running: " .. running,
  },
  {
    name = "suspended",
    obj = set(3, st(3, "Suspended", "suspended; 6 not started", {
      cond("Ready", "False", "Suspended", "suspended; 6 not started", 3),
      cond("Suspended", "True", "Suspended", "suspended; 6 not started", 3),
    })),
    status = "Suspended", message = "Suspended: suspended; 6 not started",
  },
  {
    name = "every target succeeded",
    obj = set(1, st(1, "Completed", done, { cond("Ready", "True", "Completed", done, 1) })),
    status = "Healthy", message = "Completed: " .. done,
  },
  {
    name = "stopped past maxErrors",
    obj = set(1, st(1, "MaxErrorsExceeded", tooMany, {
      cond("Ready", "False", "MaxErrorsExceeded", tooMany, 1),
      cond("Stalled", "True", "MaxErrorsExceeded", tooMany, 1),
    })),
    status = "Degraded", message = "MaxErrorsExceeded: " .. tooMany,
  },
  {
    name = "a credential awaited before the run starts",
    obj = set(1, st(1, "CredentialNotFound", "Secret kubeinvoke-credentials not found", {
      cond("Ready", "False", "CredentialNotFound", "Secret kubeinvoke-credentials not found", 1),
      cond("Reconciling", "True", "CredentialNotFound", "Secret kubeinvoke-credentials not found", 1),
    })),
    status = "Progressing", message = "CredentialNotFound: Secret kubeinvoke-credentials not found",
  },
  {
    name = "conditions of an older generation are not believed",
    obj = set(2, st(2, "Running", running, { cond("Ready", "True", "Completed", done, 1) })),
    status = "Progressing", message = "Running: " .. running,
  },
}
