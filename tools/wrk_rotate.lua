-- wrk script: rotate among many pre-built requests, print a JSON summary.
--   wrk -s tools/wrk_rotate.lua URL -- MANIFEST [count] [stamp]
-- Each MANIFEST line: METHOD<TAB>PATH<TAB>BODY_FILE[<TAB>Header: value]...
-- Every thread starts at its own random offset, so consecutive requests (and
-- the threads) carry different images: no response cache could help.
-- With "count", every response's status and X-Model-Version are also tallied
-- (a response() callback costs wrk some speed, so benchmarks leave it off).
-- With "stamp", every request carries X-Request-Start: t=<microseconds since
-- the epoch> of the moment wrk sends it, as the proxy in front of the service
-- sets it (the request is formatted then, which costs wrk some speed too).

local ffi = require("ffi")
ffi.cdef[[
typedef long time_t;
typedef long suseconds_t;
struct timeval { time_t tv_sec; suseconds_t tv_usec; };
int gettimeofday(struct timeval *tv, void *tz);
]]
local now = ffi.new("struct timeval")
local parts = {}
local stamp = false

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
    table.insert(parts, {fields[1], fields[2], headers, body})
  end
  manifest:close()
  for i = 2, #args do
    if args[i] == "count" then
      response = count  -- wrk looks for a global response() after init
    elseif args[i] == "stamp" then
      stamp = true
    end
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  index = math.random(#requests_)
end

function request()
  index = index % #requests_ + 1
  if stamp then
    local method, path, headers, body = unpack(parts[index])
    ffi.C.gettimeofday(now, nil)
    headers["X-Request-Start"] = string.format("t=%d%06d", tonumber(now.tv_sec), tonumber(now.tv_usec))
    return wrk.format(method, path, headers, body)
  end
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
