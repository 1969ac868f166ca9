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
-- PCT_FILE (optional): at the end of the run, the latency distribution wrk recorded, one
-- "percentile<TAB>milliseconds" line per percentile (bench/server_load.sh LATENCY_TSV, for
-- bench/plots.sh's latency chart)
local pct_file = os.getenv("PCT_FILE")
if pct_file then
    function done(summary, latency, requests)
        local f = assert(io.open(pct_file, "w"))
        for _, p in ipairs({1, 5, 10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90, 95, 97.5, 99,
                            99.5, 99.9, 99.99, 100}) do
            local us = p == 100 and latency.max or latency:percentile(p)
            f:write(string.format("%g\t%.3f\n", p, us / 1000))
        end
        f:close()
    end
end
