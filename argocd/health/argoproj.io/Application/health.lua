-- Argo CD health check for argoproj.io/Application: an Application's health is the health
-- Argo CD computed for it. Argo CD (since 1.8) no longer assesses child Applications by
-- default, so without this check an app-of-apps does not wait for the operator
-- Application (sync wave 0) to be healthy before it syncs the stores (wave 1).
-- The script of Argo CD's documentation ("Argo CD Application" health), unchanged in effect.
local hs = {}
hs.status = "Progressing"
hs.message = ""
if obj.status ~= nil then
  if obj.status.health ~= nil then
    hs.status = obj.status.health.status
    if obj.status.health.message ~= nil then
      hs.message = obj.status.health.message
    end
  end
end
return hs
