-- Spreads requests over PREFIXES route prefixes (/api0 .. /apiN-1).
local n = tonumber(os.getenv("PREFIXES") or "1000")
local i = 0
request = function()
  i = (i + 1) % n
  return wrk.format("GET", "/api" .. i .. "/items")
end
