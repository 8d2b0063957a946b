-- wrk script for the reliability runs: rotate among pre-built requests (as
-- wrk_rotate.lua) and also count response statuses and the X-Model-Version
-- of every answer, merged over the threads in a JSON summary line.
--   wrk -s bench/wrk_status.lua URL -- MANIFEST

local requests_ = {}
local index = 0
local threads = {}
statuses = {}
versions = {}

function setup(thread)
  table.insert(threads, thread)
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
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  index = math.random(#requests_)
end

function request()
  index = index % #requests_ + 1
  return requests_[index]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local version = headers["X-Model-Version"] or "none"
  versions[version] = (versions[version] or 0) + 1
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
