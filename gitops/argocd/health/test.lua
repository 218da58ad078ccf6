-- Table tests for the Argo CD health checks, run by Debian's Lua 5.1 (`lua5.1`).
--
--   lua5.1 gitops/argocd/health/test.lua gitops/argocd/health/kubeinvoke.io/RemoteCommand ...
--
-- Each directory holds `health.lua` (the check) and `health_test.lua`, which returns a list of
-- cases: {name = ..., obj = <the resource as Argo CD decodes it>, status = ..., message = ...}.
-- This mirrors argo-cd's resource_customizations/<group>/<Kind>/{health.lua,health_test.yaml,
-- testdata/} layout, with the cases as Lua tables because Lua has no YAML parser.
--
-- The check runs the way Argo CD runs it: as a chunk that sees a global `obj` and returns a table,
-- with only the base and table libraries (Argo CD opens no string, math, os or io library, so
-- string methods such as ("x"):sub are switched off during the run too). A fresh copy of the
-- object is used for every case.
--
-- Prints one line per failure and the summary `lua: N passed, M failed`; exits 1 on any failure.

local VALID = {
  Healthy = true, Progressing = true, Degraded = true,
  Suspended = true, Missing = true, Unknown = true,
}

-- The globals a health script may use under Argo CD (base library functions and `table`).
local ALLOWED = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber",
  "tostring", "type", "unpack", "xpcall", "getmetatable", "setmetatable",
  "rawequal", "rawget", "rawset", "_VERSION", "table",
}

local function deepcopy(v)
  if type(v) ~= "table" then
    return v
  end
  local t = {}
  for k, x in pairs(v) do
    t[k] = deepcopy(x)
  end
  return t
end

local function readFile(path)
  local f, err = io.open(path, "r")
  if f == nil then
    error("cannot read " .. path .. ": " .. tostring(err), 0)
  end
  local text = f:read("*a")
  f:close()
  return text
end

-- Runs the health script against `obj` in an Argo-CD-like sandbox; returns ok, result-or-error.
local function runCheck(source, chunkName, obj)
  local chunk, err = loadstring(source, "@" .. chunkName)
  if chunk == nil then
    return false, "does not compile: " .. err
  end
  local env = {}
  for _, name in ipairs(ALLOWED) do
    env[name] = _G[name]
  end
  env.obj = deepcopy(obj)
  setfenv(chunk, env)
  local stringMeta = getmetatable("")
  local savedIndex = stringMeta.__index
  stringMeta.__index = nil
  local ok, result = pcall(chunk)
  stringMeta.__index = savedIndex
  return ok, result
end

local function show(v)
  if type(v) == "string" then
    return string.format("%q", v)
  end
  return tostring(v)
end

local dirs = { ... }
if #dirs == 0 then
  io.stderr:write("usage: lua5.1 test.lua <dir with health.lua and health_test.lua>...\n")
  os.exit(2)
end

local passed, failed = 0, 0
local function fail(label, text)
  failed = failed + 1
  print("FAIL " .. label .. ": " .. text)
end

for _, dir in ipairs(dirs) do
  local scriptPath = dir .. "/health.lua"
  local source = readFile(scriptPath)
  local cases = dofile(dir .. "/health_test.lua")
  if type(cases) ~= "table" or #cases == 0 then
    fail(dir, "health_test.lua returned no cases")
  end
  for _, case in ipairs(cases) do
    local label = dir .. ": " .. case.name
    local ok, hs = runCheck(source, scriptPath, case.obj)
    if not ok then
      fail(label, "script error: " .. tostring(hs))
    elseif type(hs) ~= "table" then
      fail(label, "returned " .. type(hs) .. ", not a table")
    elseif not VALID[hs.status] then
      fail(label, "invalid health status " .. show(hs.status))
    elseif type(hs.message) ~= "string" then
      fail(label, "message is " .. type(hs.message) .. ", not a string")
    elseif hs.status ~= case.status or hs.message ~= case.message then
      fail(label, "want " .. case.status .. " " .. show(case.message)
        .. ", got " .. hs.status .. " " .. show(hs.message))
    else
      passed = passed + 1
    end
  end
end

print("lua: " .. passed .. " passed, " .. failed .. " failed")
if failed > 0 then
  os.exit(1)
end
