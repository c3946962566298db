-- The soak: each wrk thread behaves like a client over its day. It asks
-- POST /oauth2/token (form, Basic) for a token, uses that token for
-- BENCH_MIX_CALLS calls of GET /api/account/subnets, then asks again. Every
-- token is new, so the server keeps issuing, verifying and forgetting them.

dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/common.lua")

local basic = assert(os.getenv("BENCH_BASIC"), "BENCH_BASIC is not set")
local token = assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN is not set")
local calls = tonumber(os.getenv("BENCH_MIX_CALLS") or "100")
local sent = 0
local grant

local function account()
  return wrk.format("GET", "/api/account/subnets", {
    ["Authorization"] = "Bearer " .. token,
  })
end

function init(args)
  grant = basic_grant(basic)
end

function request()
  sent = sent + 1
  if sent % (calls + 1) == 1 then
    return grant
  end
  return account()
end

-- Wraps common.lua's count of non-2xx answers to pick up each new token.
local count = response
function response(status, headers, body)
  count(status, headers, body)
  local issued = status == 200 and string.match(body, '"access_token":"([^"]+)"')
  if issued then
    token = issued
  end
end
