-- Argo CD health check for cstore.dev/ConcurrentStore (Lua 5.1, as Argo CD runs it).
-- Reads what the cstore operator writes (src/operator/status.rs): status.observedGeneration
-- and the conditions Ready, Progressing and Degraded.
--   Progressing: no status yet, a spec generation the operator has not yet observed, a
--                rollout under way, a live reconfiguration under way (reason Reconfiguring:
--                pods migrating to a new strategy or shard count), or replicas not (yet) ready;
--   Degraded:    Degraded=True (a failed reconcile, or a rollout past its progress deadline);
--   Healthy:     Ready=True at the current generation.
-- The argocd-cm key resource.customizations.health.cstore.dev_ConcurrentStore holds this
-- same script (argocd/argocd-cm-health-patch.yaml; scripts/check-delivery.sh keeps them equal).
local hs = {}

local function condition(conditions, kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function current(c, generation)
  return c.observedGeneration == nil or generation == nil or c.observedGeneration == generation
end

local function text(value, fallback)
  if value == nil or value == "" then
    return fallback
  end
  return value
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the cstore operator to reconcile the store"
  return hs
end

if generation ~= nil and obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the cstore operator to observe generation " .. generation ..
    " (the status is of generation " .. obj.status.observedGeneration .. ")"
  return hs
end

local conditions = obj.status.conditions or {}
local degraded = condition(conditions, "Degraded")
local ready = condition(conditions, "Ready")
local progressing = condition(conditions, "Progressing")

if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = text(degraded.reason, "Degraded") .. ": " .. text(degraded.message, "the operator reports the store degraded")
  return hs
end

if ready ~= nil and ready.status == "True" and current(ready, generation) then
  hs.status = "Healthy"
  hs.message = text(ready.message, "ready")
  if obj.status.endpoint ~= nil and obj.status.endpoint ~= "" then
    hs.message = hs.message .. "; clients connect to " .. obj.status.endpoint
  end
  return hs
end

if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  if progressing.reason == "Reconfiguring" then
    hs.message = "Reconfiguring live: " .. text(progressing.message, "pods are applying the new spec")
  else
    hs.message = "Rolling out: " .. text(progressing.message, "a rollout is under way")
  end
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = "Waiting for the store to become ready: " .. text(ready.message, text(ready.reason, ready.status))
else
  hs.message = "Waiting for the store to become ready"
end
return hs
