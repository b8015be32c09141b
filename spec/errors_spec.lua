-- The one error object: fields, one-line tostring, and no secret in it.
local errors = require("assesskit.errors")

describe("assesskit.errors #luajit", function()
  it("builds an error with the documented fields and a readable one-line tostring", function()
    local err = errors.new({
      kind = "http", status = 404, name = "Not Found", message = "Candidate\nnot found",
      code = 0, method = "GET", url = "https://apiv4.talview.com/models/candidate/5",
    })
    assert.is_true(errors.is(err))
    assert.equal("http", err.kind)
    assert.equal(404, err.status)
    assert.is_false(err.retryable)
    local line = tostring(err)
    assert.equal("http 404 Not Found: Candidate not found "
      .. "(GET https://apiv4.talview.com/models/candidate/5)", line)
    assert.is_nil(line:find("\n"))
  end)

  it("lists the fields of a 422 in tostring", function()
    local err = errors.new({
      kind = "http", status = 422, message = "Data Validation Failed",
      fields = { { field = "email", message = "Email is not a valid email address." } },
    })
    assert.matches("%[email: Email is not a valid email address%.%]", tostring(err))
  end)

  it("leaves unnamed field entries (already in the message) out of tostring", function()
    local err = errors.new({
      kind = "auth", status = 400, message = "ApiKey is not invalid or incorrect",
      fields = { { message = "ApiKey is not invalid or incorrect" } },
    })
    local s = tostring(err)
    assert.not_matches("nil:", s, 1, true)
    assert.not_matches("%[", s)
    assert.matches("ApiKey is not invalid or incorrect", s, 1, true)
  end)

  it("has one rule for secret names, shared by URLs, hooks, the CLI and its config", function()
    for _, n in ipairs({ "Authorization", "x-api-key", "X-Auth-Token", "client_secret", "refresh_token",
      "access_token", "new_password_repeat", "assertion", "private_key", "passphrase", "api_key",
      "key", "Set-Cookie", "token", "password[0]" }) do
      assert.is_true(errors.is_secret_name(n), n)
    end
    for _, n in ipairs({ "token_url", "token_type", "private_key_file", "client_id", "username",
      "status_sort_key", "base_url", "Content-Type", "expires_in", "scope" }) do
      assert.is_false(errors.is_secret_name(n), n)
    end
    assert.is_false(errors.is_secret_name(nil))
  end)

  it("masks any secret-named query value in a URL, not only a fixed list", function()
    local u = errors.mask_url("https://h/x?new_password=hunter22&x-auth-token=abcd1234&page=2&token_url=u")
    assert.equal("https://h/x?new_password=***&x-auth-token=***&page=2&token_url=u", u)
  end)

  it("gives a reason phrase as the message when the server sent none", function()
    local err = errors.new({ kind = "http", status = 503 })
    assert.equal("Service Unavailable", err.message)
    assert.equal("network", errors.new({ kind = "network" }).message)
  end)

  it("shows retry_after in tostring", function()
    local err = errors.new({ kind = "http", status = 429, retry_after = 2, retryable = true })
    assert.matches("retry after 2s", tostring(err))
  end)

  it("raises on an unknown kind (misuse)", function()
    assert.has_error(function() errors.new({ kind = "oops" }) end)
    assert.has_error(function() errors.new("nope") end)
  end)

  it("masks secret query values and userinfo in the URL", function()
    local err = errors.new({
      kind = "network", method = "GET",
      url = "https://user:hunter22@h.example/x?page=2&access_token=abc123&client_secret=s3cr3t"
        .. "&name%5B0%5D=a&api_key=k&password=p#frag",
    })
    assert.is_nil(err.url:find("hunter22", 1, true))
    assert.is_nil(err.url:find("abc123", 1, true))
    assert.is_nil(err.url:find("s3cr3t", 1, true))
    assert.matches("page=2", err.url)
    assert.matches("name%%5B0%%5D=a", err.url)
    assert.matches("access_token=%*%*%*", err.url)
    assert.matches("#frag$", err.url)
  end)

  it("redacts known secret values from every text field", function()
    local secrets = { "tok-1234567890", "the-password" }
    local err = errors.new({
      kind = "auth", status = 401, name = "Unauthorized tok-1234567890",
      message = "bad token tok-1234567890 for the-password, again tok-1234567890",
      url = "https://h.example/x?t=tok-1234567890",
      fields = { { field = "password", message = "the-password is wrong" } },
    }, secrets)
    local all = tostring(err) .. err.message .. err.name .. err.url .. err.fields[1].message
    assert.is_nil(all:find("tok-1234567890", 1, true))
    assert.is_nil(all:find("the-password", 1, true))
    assert.equal("bad token *** for ***, again ***", err.message)
  end)

  it("leaves short secrets alone (nothing to redact reliably) and keeps other text", function()
    assert.equal("abc", errors.redact("abc", { "ab" }))
    assert.equal("x *** y", errors.redact("x secret y", { "secret" }))
  end)

  it("gives a plain copy with to_table", function()
    local t = errors.new({ kind = "timeout", message = "slow" }):to_table()
    assert.is_nil(getmetatable(t))
    assert.equal("timeout", t.kind)
  end)
end)
