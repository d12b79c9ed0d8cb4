-- Argo CD health check for the sales-operator.dev custom resources
-- (SalesPipeline and OrderGenerator), from their kstatus conditions:
--   resource.customizations.health.sales-operator.dev_SalesPipeline
--   resource.customizations.health.sales-operator.dev_OrderGenerator
-- Argo CD runs it with gopher-lua (Lua 5.1) in a sandbox with only the base, package,
-- table and a safe os library: no string library (no string.format, no s:sub()).
-- Objects with a deletionTimestamp never reach this script ("Pending deletion").
-- `obj` is the live object; the result is { status = ..., message = ... }.
local function condition(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function text(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local hs = {}
local status = obj.status
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting: the operator tears the AWS resources down (deletionPolicy)"
  return hs
end
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile"
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = text(stalled, "Stalled")
  return hs
end
local ready = condition(status.conditions, "Ready")
-- Paused (README "Paused"): Suspended once the operator has done what pausing asks
-- (Ready=True, reason Paused); until then (pods still stopping, AWS not readable) Progressing.
if obj.spec ~= nil and obj.spec.paused == true and ready ~= nil and ready.status == "True" then
  hs.status = "Suspended"
  hs.message = text(ready, "Paused: spec.paused is true")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready, "Ready")
  return hs
end
local reconciling = condition(status.conditions, "Reconciling")
hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = text(reconciling, "Reconciling")
else
  hs.message = text(ready, "Not ready yet")
end
return hs
