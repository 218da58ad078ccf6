-- Argo CD health check for kubeinvoke.io/v1alpha1 KubeconfigExport.
--
-- Argo CD runs this with gopher-lua (Lua 5.1) and only the base and table libraries: no string
-- functions. The global `obj` is the resource; the script returns {status = ..., message = ...}.
--
--   no status yet, or status/conditions for an older generation  -> Progressing
--   Stalled=True (a failure that retrying will not fix)            -> Degraded
--   Ready=True (also while a scheduled refresh runs)               -> Healthy
--   Ready=False and Reconciling=True (fetching, or retrying a
--     transient failure: throttling, 5xx, network)                 -> Progressing
--   Ready=False with neither (not written by kubeinvoke itself)    -> Degraded
--   no Ready condition, or Ready=Unknown                           -> Progressing
-- When a fetch fails after an earlier success, the message says which Secret still holds the last
-- good kubeconfig (the operator never removes it on failure).
local hs = {}

-- "Reason: message", or whichever of the two is set.
local function describe(c)
  local r = c.reason or ""
  local m = c.message or ""
  if r ~= "" and m ~= "" then
    return r .. ": " .. m
  end
  if r ~= "" then
    return r
  end
  return m
end

local function findCondition(conditions, conditionType)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
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

-- "; last good kubeconfig kept in Secret <name>" after an earlier successful export.
local function kept(status)
  if status.contentHash ~= nil and status.secretName ~= nil and status.secretName ~= "" then
    return "; last good kubeconfig kept in Secret " .. status.secretName
  end
  return ""
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

local ready = findCondition(status.conditions, "Ready")
local reconciling = findCondition(status.conditions, "Reconciling")
local stalled = findCondition(status.conditions, "Stalled")

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled) .. kept(status)
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling) .. kept(status)
elseif ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready) .. kept(status)
else
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
end
return hs
