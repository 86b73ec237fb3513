-- Spreads requests over CLIENTS distinct client addresses (10.0.0.0/8), sent as x-forwarded-for
-- by a trusted proxy (the gateway runs with TRUST_PROXY=127.0.0.1): every address gets its own
-- counter in the per-IP limit and in the route's limit (a public route is keyed by client IP).
local n = tonumber(os.getenv("CLIENTS") or "100000")
local i = 0
request = function()
  i = (i + 1) % n
  local ip = "10." .. math.floor(i / 65536) % 256 .. "." .. math.floor(i / 256) % 256 .. "." .. i % 256
  return wrk.format("GET", "/api/items", { ["x-forwarded-for"] = ip })
end
