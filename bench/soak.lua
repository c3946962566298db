-- The soak: mix.lua, except that each wrk thread uses the token it was last
-- granted, as a client over its day would: a token, 100 account calls with
-- it, the next token. Every token is new, so the server keeps issuing,
-- verifying and forgetting them.

dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/mix.lua")

-- Wraps common.lua's count of non-2xx answers to pick up each new token.
local count = response
function response(status, headers, body)
  count(status, headers, body)
  local issued = status == 200 and string.match(body, '"access_token":"([^"]+)"')
  if issued then
    use_token(issued)
  end
end
