-- Scenario (3) with new query values on every request: `page` (a bare word) and `q` (text) are
-- never seen before, so the inspection cache cannot answer for them; the path and the
-- parameter names repeat, as they do in real traffic.
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/api/items?page=" .. i .. "&sort=name&q=blue+shoes+" .. i)
end
