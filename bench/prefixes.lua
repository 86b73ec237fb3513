-- Spreads requests over PREFIXES route prefixes (/api0 .. /apiN-1); PREFIXES=1 asks /api, the
-- one-prefix gateway's route, through the same script (so wrk does the same work in both runs).
local n = tonumber(os.getenv("PREFIXES") or "1000")
local i = 0
request = function()
  if n == 1 then
    return wrk.format("GET", "/api/items")
  end
  i = (i + 1) % n
  return wrk.format("GET", "/api" .. i .. "/items")
end
