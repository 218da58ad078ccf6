-- Cases for health.lua, run by ../../test.lua. Each object is what Argo CD hands the script
-- (decoded JSON: absent fields are nil, numbers are plain Lua numbers).

local AKS = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1"
  .. "/providers/Microsoft.ContainerService/managedClusters/aks1"
local CMD = "0e9872e6629349dc865e27ee6f8bab2d"

local function cond(ctype, status, reason, message, generation)
  return {
    type = ctype, status = status, reason = reason, message = message,
    observedGeneration = generation, lastTransitionTime = "2026-11-22T10:00:00Z",
  }
end

-- kstatus conditions as the operator writes them for each kind of state.
local function progressing(reason, message, generation)
  return {
    cond("Ready", "False", reason, message, generation),
    cond("Reconciling", "True", reason, message, generation),
  }
end
local function ready(reason, message, generation)
  return { cond("Ready", "True", reason, message, generation) }
end
local function stalled(reason, message, generation)
  return {
    cond("Ready", "False", reason, message, generation),
    cond("Stalled", "True", reason, message, generation),
  }
end

local function rc(generation, status)
  return {
    apiVersion = "kubeinvoke.io/v1alpha1",
    kind = "RemoteCommand",
    metadata = { name = "list-system-pods", namespace = "team-a", generation = generation },
    spec = { target = { aks = { resourceId = AKS } }, command = "kubectl get pods -n kube-system" },
    status = status,
  }
end

-- A status for generation `g` in `phase` with `reason`/`message` and matching conditions.
local function st(g, phase, reason, message, conditions)
  return {
    observedGeneration = g, phase = phase, reason = reason, message = message,
    runId = "", conditions = conditions,
  }
end

local completed = "command " .. CMD .. " exited with code 0; output (1234 bytes) in Secret list-system-pods-output"
local nonZero = "command " .. CMD .. " exited with code 3; output (87 bytes) in Secret list-system-pods-output"
local noExit = "the session ended; ACI reports no exit code without spec.target.containerInstance.shell; "
  .. "output (512 bytes) in Secret app-env-output"

return {
  {
    name = "fresh object, no status yet",
    obj = rc(1, nil),
    status = "Progressing", message = "Waiting for the operator",
  },
  {
    name = "status defaulted by the CRD (observedGeneration 0)",
    obj = rc(1, { observedGeneration = 0 }),
    status = "Progressing", message = "Waiting for the operator to observe generation 1",
  },
  {
    name = "generation observed, no phase written yet",
    obj = rc(1, { observedGeneration = 1 }),
    status = "Progressing", message = "Waiting for the operator",
  },
  {
    name = "pending while ARM throttles",
    obj = rc(1, st(1, "Pending", "Throttled", "ARM answered 429; retrying after 10s",
      progressing("Throttled", "ARM answered 429; retrying after 10s", 1))),
    status = "Progressing", message = "Throttled: ARM answered 429; retrying after 10s",
  },
  {
    name = "running: dispatching",
    obj = rc(1, st(1, "Running", "Dispatching", "dispatching attempt 1",
      progressing("Dispatching", "dispatching attempt 1", 1))),
    status = "Progressing", message = "Dispatching: dispatching attempt 1",
  },
  {
    name = "running: retrying a transient error",
    obj = rc(2, st(2, "Running", "Retrying", "ARM answered 503 while polling the command result",
      progressing("Retrying", "ARM answered 503 while polling the command result", 2))),
    status = "Progressing", message = "Retrying: ARM answered 503 while polling the command result",
  },
  {
    name = "running without reason or message",
    obj = rc(1, st(1, "Running", nil, nil, nil)),
    status = "Progressing", message = "Running",
  },
  {
    name = "succeeded (exit code 0)",
    obj = rc(1, st(1, "Succeeded", "Completed", completed, ready("Completed", completed, 1))),
    status = "Healthy", message = "Completed: " .. completed,
  },
  {
    name = "succeeded without an exit code (ACI without shell)",
    obj = rc(1, st(1, "Succeeded", "ExitCodeUnavailable", noExit,
      ready("ExitCodeUnavailable", noExit, 1))),
    status = "Healthy", message = "ExitCodeUnavailable: " .. noExit,
  },
  {
    name = "succeeded without reason or message",
    obj = rc(1, st(1, "Succeeded", nil, nil, nil)),
    status = "Healthy", message = "Succeeded",
  },
  {
    name = "failed: non-zero exit",
    obj = rc(1, st(1, "Failed", "NonZeroExit", nonZero, stalled("NonZeroExit", nonZero, 1))),
    status = "Degraded", message = "NonZeroExit: " .. nonZero,
  },
  {
    name = "failed: deadline exceeded",
    obj = rc(1, st(1, "Failed", "DeadlineExceeded", "not finished within 300s",
      stalled("DeadlineExceeded", "not finished within 300s", 1))),
    status = "Degraded", message = "DeadlineExceeded: not finished within 300s",
  },
  {
    name = "failed: dispatch interrupted by an operator restart",
    obj = rc(1, st(1, "Failed", "DispatchInterrupted",
      "the operator stopped before ARM's answer was recorded; not sent again (dispatchPolicy AtMostOnce)",
      stalled("DispatchInterrupted", "interrupted", 1))),
    status = "Degraded",
    message = "DispatchInterrupted: the operator stopped before ARM's answer was recorded; "
      .. "not sent again (dispatchPolicy AtMostOnce)",
  },
  {
    name = "failed with a reason only",
    obj = rc(1, st(1, "Failed", "InvalidSpec", nil, nil)),
    status = "Degraded", message = "InvalidSpec",
  },
  {
    name = "spec changed after success: new generation not observed yet",
    obj = rc(3, st(2, "Succeeded", "Completed", completed, ready("Completed", completed, 2))),
    status = "Progressing", message = "Waiting for the operator to observe generation 3",
  },
  {
    name = "conditions still from the previous generation",
    obj = rc(2, st(2, "Succeeded", "Completed", completed, ready("Completed", completed, 1))),
    status = "Progressing", message = "Waiting for the operator to update the conditions",
  },
  {
    name = "conditions without observedGeneration are trusted",
    obj = rc(2, st(2, "Failed", "Forbidden", "missing action runcommand/action",
      stalled("Forbidden", "missing action runcommand/action", nil))),
    status = "Degraded", message = "Forbidden: missing action runcommand/action",
  },
  {
    name = "a phase this check does not know",
    obj = rc(1, st(1, "Paused", "Paused", "paused", nil)),
    status = "Unknown", message = "Unknown phase Paused",
  },
}
