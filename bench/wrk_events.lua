-- wrk_events.lua - POST /v1/events with BATCH events per request (1 = one event, no batching),
-- users and items from the ids listed one per line in USERS_FILE and ITEMS_FILE.
local function read(path)
    local t = {}
    for line in io.lines(path) do t[#t + 1] = line end
    return t
end
local users = read(os.getenv("USERS_FILE"))
local items = read(os.getenv("ITEMS_FILE"))
local batch = tonumber(os.getenv("BATCH") or "1")
local i = 0
function setup(thread)
    thread:set("offset", math.random(0, 1000000))
end
function request()
    local ev = {}
    for j = 1, batch do
        i = i + 1
        local s = i * 7919 + (offset or 0)
        ev[j] = string.format('{"user":"%s","item":"%s"}', users[(s % #users) + 1],
                              items[((s * 31) % #items) + 1])
    end
    local body = batch == 1 and ev[1] or ('{"events":[' .. table.concat(ev, ",") .. ']}')
    return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, body)
end
