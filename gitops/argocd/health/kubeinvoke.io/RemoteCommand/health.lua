-- Argo CD health check for kubeinvoke.io/v1alpha1 RemoteCommand.
--
-- Argo CD runs this with gopher-lua (Lua 5.1) and only the base and table libraries: no string
-- functions. The global `obj` is the resource; the script returns {status = ..., message = ...}.
--
--   no status yet, or status/conditions for an older generation  -> Progressing
--   phase Pending or Running (also while Throttled or Retrying)    -> Progressing
--   phase Succeeded (Completed, or ExitCodeUnavailable on ACI)     -> Healthy
--   phase Failed (NonZeroExit, DeadlineExceeded, Forbidden, ...)   -> Degraded
--   any other phase                                                -> Unknown
local hs = {}

-- "Reason: message", or whichever of the two is set.
local function describe(reason, message)
  local r = reason or ""
  local m = message or ""
  if r ~= "" and m ~= "" then
    return r .. ": " .. m
  end
  if r ~= "" then
    return r
  end
  return m
end

-- Whether a kstatus condition was written for an older generation than the spec's.
local function staleConditions(conditions, generation)
  if conditions == nil or generation == nil then
    return false
  end
  for _, c in ipairs(conditions) do
    if (c.type == "Ready" or c.type == "Reconciling" or c.type == "Stalled")
        and c.observedGeneration ~= nil and c.observedGeneration ~= generation then
      return true
    end
  end
  return false
end

local status = obj.status
local generation = obj.metadata.generation

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end

if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

if staleConditions(status.conditions, generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to update the conditions"
  return hs
end

local phase = status.phase
local text = describe(status.reason, status.message)

if phase == nil or phase == "" then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
elseif phase == "Pending" or phase == "Running" then
  hs.status = "Progressing"
  if text == "" then
    text = phase
  end
  hs.message = text
elseif phase == "Succeeded" then
  hs.status = "Healthy"
  if text == "" then
    text = "Succeeded"
  end
  hs.message = text
elseif phase == "Failed" then
  hs.status = "Degraded"
  if text == "" then
    text = "Failed"
  end
  hs.message = text
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
