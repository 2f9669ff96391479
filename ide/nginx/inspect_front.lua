-- The response rules of ide/headers.py (browser_response_headers), for responses nginx relays straight
-- from a sandbox's service (X-Route: direct, see ide/front.py). Kept equal to the Python by
-- tests/ide/test_front.py, which sends the same headers through both.
local M = {}

local function strip(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function under(path, prefix)
  return path == prefix or path:sub(1, #prefix + 1) == prefix .. "/"
end

-- urllib.parse.urlsplit: scheme, netloc (nil when absent), path, query, fragment.
local function split(url)
  local scheme, rest = url:match("^(%a[%w+.-]*):(.*)$")
  if scheme == nil then
    scheme, rest = "", url
  end
  local netloc
  if rest:sub(1, 2) == "//" then
    local tail = rest:sub(3)
    local stop = tail:find("[/?#]")
    if stop then
      netloc, rest = tail:sub(1, stop - 1), tail:sub(stop)
    else
      netloc, rest = tail, ""
    end
    if netloc == "" then
      netloc = nil -- "///x" is a path, as for urlsplit's falsy netloc
    end
  end
  local fragment, query = "", ""
  local hash = rest:find("#", 1, true)
  if hash then
    fragment, rest = rest:sub(hash + 1), rest:sub(1, hash - 1)
  end
  local mark = rest:find("?", 1, true)
  if mark then
    query, rest = rest:sub(mark + 1), rest:sub(1, mark - 1)
  end
  return scheme:lower(), netloc, rest, query, fragment
end

-- (hostname, port) as urlsplit's .hostname and .port (with the scheme's default); nil for a bad port.
local function origin(url)
  local scheme, netloc = split(url)
  local hostport = (netloc or ""):match("^.*@(.*)$") or netloc or ""
  local host, port
  if hostport:sub(1, 1) == "[" then
    host, port = hostport:match("^%[([^%]]*)%]:?(.*)$")
    host, port = host or "", port or ""
  else
    host, port = hostport:match("^([^:]*):?(.*)$")
  end
  local number
  if port ~= "" then
    if not port:match("^%d+$") then
      return nil
    end
    number = tonumber(port)
    if number > 65535 then
      return nil
    end
  end
  if number == nil or number == 0 then -- `parts.port or default`: port 0 counts as none
    number = ({http = 80, https = 443, ws = 80, wss = 443})[scheme]
  end
  return host:lower(), number
end

function M.rewrite_location(location, prefix, upstream, browser_host)
  -- As urlsplit: leading C0 controls and spaces go, and tabs and newlines anywhere.
  local cleaned = location:gsub("^[%z\1-\32]+", ""):gsub("[\t\r\n]", "")
  local scheme, netloc, path, query, fragment = split(cleaned)
  if netloc ~= nil then
    local absolute = cleaned
    if scheme == "" then
      absolute = split(upstream) .. ":" .. cleaned
    end
    local host, port = origin(absolute)
    local up_host, up_port = origin(upstream)
    if host == nil or up_host == nil then
      return location
    end
    local same_service = host == up_host and port == up_port
    local same_platform = netloc:lower() == browser_host:lower()
    if not (same_service or same_platform) then
      return location
    end
  elseif path:sub(1, 1) ~= "/" then
    return location
  end
  if path == "" then
    path = "/"
  end
  if not under(path, prefix) then
    path = prefix .. path
  end
  if query ~= "" then
    path = path .. "?" .. query
  end
  if fragment ~= "" then
    path = path .. "#" .. fragment
  end
  return path
end

-- Splits on ";" keeping empty pieces, as str.split does.
local function pieces(value)
  local out = {}
  for piece in (value .. ";"):gmatch("([^;]*);") do
    out[#out + 1] = piece
  end
  return out
end

function M.rewrite_set_cookie(value, prefix, platform)
  local parts = pieces(value)
  local name = strip(parts[1]:match("^([^=]*)") or "")
  if platform[name] then
    return nil
  end
  local kept = {strip(parts[1])}
  for i = 2, #parts do
    local attribute = strip(parts[i])
    local key, rest = attribute:match("^([^=]*)=?(.*)$")
    local lowered = strip(key):lower()
    if lowered == "path" then
      local current = strip(rest)
      if current:sub(1, 1) ~= "/" then
        current = "/"
      end
      if not under(current, prefix) then
        current = prefix .. current
      end
      kept[#kept + 1] = "Path=" .. current
    elseif lowered ~= "domain" then
      kept[#kept + 1] = attribute
    end
  end
  return table.concat(kept, "; ")
end

-- Service-level answers of /_front/route (per the request's Sec-Fetch-Site, -Mode and method too, which it weighs),
-- kept in memory as "route\nupstream\nprefix\ncookie\nstatic\npolicy".
local function answer_for(prefix, websocket)
  local routes = ngx.shared.front_routes
  local key = ngx.sha1_bin(table.concat({prefix, ngx.var.http_host or "", ngx.var.http_origin or "",
                                         websocket and "ws" or "", ngx.var.http_cookie or "",
                                         ngx.var.http_sec_fetch_site or "", ngx.var.http_sec_fetch_mode or "",
                                         ngx.req.get_method()}, "\0"))
  local answer = routes:get(key)
  if answer ~= nil then
    return answer
  end
  local response = ngx.location.capture("/_front/route", {method = ngx.HTTP_GET})
  if response.status ~= 200 then
    return nil
  end
  local header = response.header
  local function value(name)
    local v = header[name]
    return type(v) == "table" and v[1] or v or ""
  end
  answer = table.concat({value("X-Route"), value("X-Route-Upstream"), value("X-Route-Prefix"),
                         value("X-Route-Cookie"), value("X-Route-Static"), value("X-Route-Policy")}, "\n")
  local seconds = tonumber(value("Cache-Control"):match("max%-age=(%d+)") or "0")
  if seconds > 0 then
    routes:set(key, answer, seconds)
  end
  return answer
end

-- access_by_lua: sends the request straight to the service when Daphne's answer allows it and nothing
-- but relaying is left (see ide/front.py); otherwise leaves it to Daphne (the $w_* defaults).
function M.access()
  local path, query = ngx.var.request_uri:match("^([^?]*)%??(.*)$")
  local prefix, rest = path:match("^(/w/%d+/[a-z0-9%-]+)(.*)$")
  if prefix == nil or (rest ~= "" and rest:sub(1, 1) ~= "/") then
    return -- not a workspace path: Daphne's 404
  end
  local websocket = (ngx.var.http_upgrade or ""):lower() == "websocket"
  if ("&" .. query .. "&"):find("&ticket[=&]") then
    return -- a ticket: Daphne redeems it and takes it out of the query (ide/workspace_auth.py)
  end
  local answer = answer_for(prefix, websocket)
  if answer == nil then
    return
  end
  local route, upstream, answered_prefix, cookie, static, policy = answer:match("^(.-)\n(.-)\n(.-)\n(.-)\n(.-)\n(.*)$")
  if route ~= "direct" or answered_prefix ~= prefix then
    return
  end
  if rest == "" and not websocket then
    return -- the redirect to the slash form
  end
  local method = ngx.req.get_method()
  if static ~= "" and not websocket and (method == "GET" or method == "HEAD") and rest:sub(1, #static) == static then
    return -- VS Code's own files, from the control plane's copy
  end
  if static ~= "" and not websocket and method == "GET" and rest == "/" then
    return -- VS Code's page, rendered by the control plane to load its files from the shared path
  end
  ngx.var.w_direct = "1"
  ngx.var.w_pass = upstream
  ngx.var.w_uri = (rest == "" and "/" or rest) .. (query ~= "" and ("?" .. query) or "")
  ngx.var.w_host = upstream
  ngx.var.w_cookie = cookie
  ngx.var.w_prefix = prefix
  ngx.var.w_base = "http://" .. upstream
  ngx.var.w_policy = policy
end

-- header_filter_by_lua: `platform` is the set of the platform's cookie names.
function M.filter(platform)
  if ngx.var.w_direct ~= "1" then
    return -- Daphne's proxy has applied the rules already
  end
  local prefix, upstream = ngx.var.w_prefix, ngx.var.w_base
  local cookies = ngx.header["Set-Cookie"]
  if cookies ~= nil then
    if type(cookies) == "string" then
      cookies = {cookies}
    end
    local kept = {}
    for _, cookie in ipairs(cookies) do
      local rewritten = M.rewrite_set_cookie(cookie, prefix, platform)
      if rewritten ~= nil then
        kept[#kept + 1] = rewritten
      end
    end
    ngx.header["Set-Cookie"] = (#kept > 0) and kept or nil
  end
  local locations = ngx.header["Location"]
  if type(locations) == "string" then
    locations = {locations}
  end
  if locations ~= nil then
    local rewritten = {}
    for _, location in ipairs(locations) do
      rewritten[#rewritten + 1] = M.rewrite_location(location, prefix, upstream, ngx.var.http_host or "")
    end
    ngx.header["Location"] = (#rewritten == 1) and rewritten[1] or rewritten
  end
end

return M
