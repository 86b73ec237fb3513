-- Spreads requests over KEYS API keys (bench/scenarios.mjs apiKeysFile: bench-key-<7 digits>-...),
-- stepping by a prime so consecutive requests land far apart in the key table.
local n = tonumber(os.getenv("KEYS") or "10")
local i = 0
request = function()
  i = i + 1
  local k = (i * 7919) % n
  return wrk.format("GET", "/api/items", { ["x-api-key"] = string.format("bench-key-%07d-0123456789abcdef", k) })
end
