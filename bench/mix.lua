-- A client's day: one token request (POST /oauth2/token, form and Basic
-- auth) per BENCH_MIX_CALLS account API calls (GET /api/account/subnets
-- with a bearer token). Each wrk thread keeps its own count, so every
-- thread sends the same mix. Credentials come from the environment
-- (BENCH_BASIC, BENCH_TOKEN) so that they are never written to a file.

dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/common.lua")

local basic = assert(os.getenv("BENCH_BASIC"), "BENCH_BASIC is not set")
local token = assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN is not set")
local calls = tonumber(os.getenv("BENCH_MIX_CALLS") or "100")
local sent = 0
local grant, account

-- Sends the account calls with another token from now on (soak.lua gives
-- each thread the token it was last granted).
function use_token(new_token)
  account = wrk.format("GET", "/api/account/subnets", {
    ["Authorization"] = "Bearer " .. new_token,
  })
end

function init(args)
  grant = wrk.format("POST", "/oauth2/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic " .. basic,
  }, "grant_type=client_credentials")
  use_token(token)
end

function request()
  sent = sent + 1
  -- The token request comes first in every cycle of calls + 1 requests.
  if sent % (calls + 1) == 1 then
    return grant
  end
  return account
end
