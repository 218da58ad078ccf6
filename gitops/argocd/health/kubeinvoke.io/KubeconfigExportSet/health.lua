-- Argo CD health check for kubeinvoke.io/v1alpha1 KubeconfigExportSet (a kubeconfig Secret for
-- every cluster an ARM selector finds).
--
-- Argo CD runs this with gopher-lua (Lua 5.1) and only the base and table libraries: no string
-- functions. The global `obj` is the resource; the script returns {status = ..., message = ...}.
--
--   no status yet, or status/conditions for an older generation      -> Progressing
--   Ready=True (the last listing succeeded, every export is ready)    -> Healthy
--   reason ExportsFailed (some exports failed: status.failedClusters) -> Degraded
--   Stalled=True (InvalidSpec, Forbidden, ...)                        -> Degraded
--   anything else (exports being fetched, a listing retried,
--     a credential awaited)                                           -> Progressing
local hs = {}

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

-- The status of condition `ctype` if it was written for `generation`, else nil.
local function condition(conditions, ctype, generation)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == ctype then
      if generation ~= nil and c.observedGeneration ~= nil and c.observedGeneration ~= generation then
        return nil
      end
      return c.status
    end
  end
  return nil
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

local text = describe(status.reason, status.message)
if text == "" then
  text = "Waiting for the operator"
end
hs.message = text

if condition(status.conditions, "Ready", generation) == "True" then
  hs.status = "Healthy"
elseif status.reason == "ExportsFailed" then
  hs.status = "Degraded"
elseif condition(status.conditions, "Stalled", generation) == "True" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
return hs
