-- wrk script: rotate among many pre-built requests, print a JSON summary.
--   wrk -s bench/wrk_rotate.lua URL -- MANIFEST
-- Each MANIFEST line: METHOD<TAB>PATH<TAB>BODY_FILE[<TAB>Header: value]...
-- Every thread starts at its own random offset, so consecutive requests (and
-- the two threads) carry different images: no response cache could help.

local requests = {}
local index = 0

function init(args)
  local manifest = assert(io.open(args[1], "r"))
  for line in manifest:lines() do
    local fields = {}
    for field in string.gmatch(line, "[^\t]+") do
      table.insert(fields, field)
    end
    local file = assert(io.open(fields[3], "rb"))
    local body = file:read("*a")
    file:close()
    local headers = {}
    for i = 4, #fields do
      local key, value = string.match(fields[i], "^([^:]+):%s*(.*)$")
      headers[key] = value
    end
    table.insert(requests, wrk.format(fields[1], fields[2], headers, body))
  end
  manifest:close()
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  index = math.random(#requests)
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
