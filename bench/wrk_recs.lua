-- wrk_recs.lua - GET /v1/users/{user}/recommendations?k=K for the user ids listed one per line
-- in USERS_FILE, taken in a fixed stride order; each wrk thread starts at a different offset.
local users = {}
for line in io.lines(os.getenv("USERS_FILE")) do users[#users + 1] = line end
local k = os.getenv("K") or "10"
local i = 0
function setup(thread)
    thread:set("offset", math.random(0, #users - 1))
end
function request()
    i = i + 1
    local u = users[((i * 7919 + (offset or 0)) % #users) + 1]
    return wrk.format("GET", "/v1/users/" .. u .. "/recommendations?k=" .. k)
end
-- DELAY_MS (optional): each connection waits this long before each request, to offer a fixed
-- rate below capacity (about connections * 1000 / (DELAY_MS + latency) requests/s)
local delay_ms = tonumber(os.getenv("DELAY_MS") or "")
if delay_ms then
    function delay() return delay_ms end
end
