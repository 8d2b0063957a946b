-- wrk script: rotate among many pre-built requests, print a JSON summary.
--   wrk -s bench/wrk_rotate.lua URL -- MANIFEST [count]
-- Each MANIFEST line: METHOD<TAB>PATH<TAB>BODY_FILE[<TAB>Header: value]...
-- Every thread starts at its own random offset, so consecutive requests (and
-- the threads) carry different images: no response cache could help.
-- With "count", every response's status and X-Model-Version are also tallied
-- (a response() callback costs wrk some speed, so benchmarks leave it off).

local requests_ = {}
local index = 0
local threads = {}
statuses = {}
versions = {}

function setup(thread)
  table.insert(threads, thread)
end

local function count(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local version = headers["X-Model-Version"] or "none"
  versions[version] = (versions[version] or 0) + 1
end

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
    table.insert(requests_, wrk.format(fields[1], fields[2], headers, body))
  end
  manifest:close()
  if args[2] == "count" then
    response = count  -- wrk looks for a global response() after init
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  index = math.random(#requests_)
end

function request()
  index = index % #requests_ + 1
  return requests_[index]
end

local function json_map(map)
  local parts = {}
  for key, value in pairs(map) do
    table.insert(parts, string.format('"%s": %d', tostring(key), value))
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
  local all_statuses, all_versions = {}, {}
  for _, thread in ipairs(threads) do
    for key, value in pairs(thread:get("statuses")) do
      all_statuses[key] = (all_statuses[key] or 0) + value
    end
    for key, value in pairs(thread:get("versions")) do
      all_versions[key] = (all_versions[key] or 0) + value
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"statuses": %s, "versions": %s}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    json_map(all_statuses), json_map(all_versions)))
end
