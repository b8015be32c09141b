-- InterviewMocha PDF reports against the real sandbox: byte-for-byte downloads, progress,
-- where the API key goes, and failures that must leave no file (or half file) behind.
-- Runs under Lua 5.4 and LuaJIT (tag luajit): no 5.4-only syntax here.

local sandbox = require("support.sandbox")
local sys = require("support.sys")
local recording = require("support.transport").recording
local interviewmocha = require("assesskit.interviewmocha")

local read, write, ls = sys.read, sys.write, sys.ls

describe("interviewmocha PDF download #luajit", function()
  local sb = sandbox.fixture({ reset = true, clear = true })
  local im, dir

  -- The PDF as the server sends it, fetched without assesskit.
  local function expected_pdf(url)
    local path = url:sub(#sb.url + 1):gsub("^https?://[^/]+", "")
    local r = sb:request("GET", path)
    assert.equal(200, r.status)
    assert.equal("%PDF-", r.body:sub(1, 5))
    return r.body
  end

  local function pdf_requests()
    return sb:requests({ path = "/files/PDFReport" })
  end

  setup(function()
    im = sb:interviewmocha()
  end)

  teardown(function()
    if im then im:close() end
  end)

  before_each(function()
    dir = sys.tmpdir("im-dl")
  end)

  after_each(function()
    sys.rmdir(dir)
  end)

  it("saves the report's PDF byte for byte and leaves only that file", function()
    local report = assert(im.reports:get(225634))
    local want = expected_pdf(report.pdfReportUrl)
    local path = dir .. "/report.pdf"
    local n, err, res = im.reports:download_pdf(report, path)
    assert.is_nil(err)
    assert.equal(#want, n)
    assert.equal(200, res.status)
    assert.equal(want, read(path))
    assert.same({ "report.pdf" }, ls(dir))
  end)

  it("fetches the report first when given an invitation id, and sends the key on the API's origin", function()
    local path = dir .. "/by-id.pdf"
    local n = assert(im.reports:download_pdf(2807324, path))
    local log = sb:requests()
    assert.equal(2, #log)
    assert.equal("/v3/reports/2807324", log[1].path)
    assert.equal("/files/PDFReport", log[2].path)
    assert.equal("***", log[2].headers["x-api-key"])
    local report = assert(im.reports:get(2807324))
    local want = expected_pdf(report.pdfReportUrl)
    assert.equal(#want, n)
    assert.equal(want, read(path))
  end)

  it("streams to a temporary file beside the target through the transport's output", function()
    local rec = recording()
    local c = sb:interviewmocha({ transport = rec })
    local report = assert(c.reports:get(225634))
    local path = dir .. "/streamed.pdf"
    assert(c.reports:download_pdf(report, path))
    local req = rec.sent[#rec.sent]
    assert.equal(report.pdfReportUrl, req.url)
    assert.is_string(req.output)
    assert.equal(path .. ".part-", req.output:sub(1, #path + 6))
    assert.is_nil(req.body)
    assert.is_nil(read(req.output))
    c:close()
    rec.close()
  end)

  it("reports progress up to the whole size", function()
    local report = assert(im.reports:get(2807330))
    local want = expected_pdf(report.pdfReportUrl)
    local calls, last, monotonic = 0, 0, true
    local n = assert(im.reports:download_pdf(report, dir .. "/p.pdf", function(received, total)
      calls = calls + 1
      if received < last then monotonic = false end
      last = received
      if total ~= nil then assert.equal(#want, total) end
    end))
    assert.is_true(calls >= 1)
    assert.is_true(monotonic)
    assert.equal(#want, last)
    assert.equal(#want, n)
  end)

  it("accepts an options table with on_progress", function()
    local got = 0
    local n = assert(im.reports:download_pdf(225634, dir .. "/o.pdf", {
      on_progress = function(received) got = received end, timeout = 10 }))
    assert.equal(n, got)
  end)

  it("does not send the key to another host", function()
    local report = assert(im.reports:get(225634))
    local want = expected_pdf(report.pdfReportUrl)
    -- same server, another host name: another origin
    local other = report.pdfReportUrl:gsub("^(https?://)127%.0%.0%.1", "%1localhost")
    assert.is_not.equal(report.pdfReportUrl, other)
    sb:clear_requests()
    local path = dir .. "/other.pdf"
    assert(im.reports:download_pdf({ pdfReportUrl = other }, path))
    local log = pdf_requests()
    assert.equal(1, #log)
    assert.is_nil(log[1].headers["x-api-key"])
    assert.equal(want, read(path))
  end)

  it("retries a 503 while downloading and still writes exactly the PDF", function()
    local report = assert(im.reports:get(225634))
    local want = expected_pdf(report.pdfReportUrl)
    local c = sb:interviewmocha({ max_retries = 2, sleep = function() end })
    sb:fault({ kind = "status", status = 503, path = "/files/PDFReport", times = 1 })
    local path = dir .. "/retried.pdf"
    local n, err, res = c.reports:download_pdf(report, path)
    assert.is_nil(err)
    assert.equal(2, res.attempts)
    assert.equal(#want, n)
    assert.equal(want, read(path))
    assert.same({ "retried.pdf" }, ls(dir))
    c:close()
  end)

  describe("failures leave the target as it was and no temporary file", function()
    local path

    before_each(function()
      path = dir .. "/keep.pdf"
      write(path, "previous content")
    end)

    local function untouched()
      assert.equal("previous content", read(path))
      assert.same({ "keep.pdf" }, ls(dir))
    end

    it("an unknown PDF: the server's 404 message", function()
      local report = assert(im.reports:get(225634))
      local url = report.pdfReportUrl:gsub("id=[^&]*", "id=nope")
      local n, err = im.reports:download_pdf({ pdfReportUrl = url }, path)
      assert.is_nil(n)
      assert.equal("http", err.kind)
      assert.equal(404, err.status)
      assert.equal("Report not found", err.message)
      untouched()
    end)

    it("an unknown invitation id: the report's 404, no PDF request", function()
      local n, err = im.reports:download_pdf(1, path)
      assert.is_nil(n)
      assert.equal(404, err.status)
      assert.equal(0, #pdf_requests())
      untouched()
    end)

    it("a progress callback that raises aborts the transfer", function()
      local n, err = im.reports:download_pdf(225634, path, function() error("stop here") end)
      assert.is_nil(n)
      assert.equal("aborted", err.kind)
      assert.matches("stop here", err.message)
      untouched()
    end)

    it("a body that is not a PDF is a decode error (unless check_pdf = false)", function()
      local json_url = sb.url .. "/v3/reports/225634?reportType=1"
      local n, err = im.reports:download_pdf({ pdfReportUrl = json_url }, path)
      assert.is_nil(n)
      assert.equal("decode", err.kind)
      assert.matches("not a PDF", err.message)
      untouched()
      local n2 = assert(im.reports:download_pdf({ pdfReportUrl = json_url }, path, { check_pdf = false }))
      assert.equal(n2, #read(path))
      assert.equal("{", read(path):sub(1, 1))
    end)

    it("a connection cut mid-body is a network error", function()
      sb:fault({ kind = "truncate", path = "/files/PDFReport" })
      local n, err = im.reports:download_pdf(225634, path)
      assert.is_nil(n)
      assert.equal("network", err.kind)
      untouched()
    end)

    it("a body slower than the timeout is a timeout error", function()
      sb:fault({ kind = "slow_body", delay = 3, path = "/files/PDFReport" })
      local n, err = im.reports:download_pdf(225634, path, { timeout = 0.5 })
      assert.is_nil(n)
      assert.equal("timeout", err.kind)
      untouched()
    end)

    it("plain http:// to a non-loopback host is refused and nothing is sent", function()
      sb:clear_requests()
      local n, err = im.reports:download_pdf({ pdfReportUrl = "http://pdf.example.invalid/r.pdf" }, path)
      assert.is_nil(n)
      assert.equal("insecure", err.kind)
      assert.equal(0, #sb:requests())
      untouched()
    end)

    it("a report without pdfReportUrl is a validation error", function()
      for _, r in ipairs({ {}, { pdfReportUrl = interviewmocha.null }, { pdfReportUrl = "" },
        { pdfReportUrl = "ftp://x/y.pdf" } }) do
        local n, err = im.reports:download_pdf(r, path)
        assert.is_nil(n)
        assert.equal("validation", err.kind)
      end
      untouched()
    end)

    it("a bad invitation id is a validation error and nothing is sent", function()
      local n, err = im.reports:download_pdf(-5, path)
      assert.is_nil(n)
      assert.equal("validation", err.kind)
      assert.equal(0, #sb:requests())
      untouched()
    end)
  end)

  it("a directory that cannot be written is an io error, found before the report is fetched", function()
    sb:clear_requests()
    local n, err = im.reports:download_pdf(225634, dir .. "/missing/sub/r.pdf")
    assert.is_nil(n)
    assert.equal("io", err.kind)
    assert.is_false(err.sent)
    assert.matches("cannot write " .. (dir .. "/missing/sub/r.pdf"):gsub("%p", "%%%0") .. ": ", err.message)
    assert.same({}, ls(dir))
    assert.same({}, sb:requests()) -- not even GET /v3/reports/225634
  end)

  it("raises on a path that is not a string and on a wrong callback", function()
    assert.has_error(function() im.reports:download_pdf(225634, nil) end,
      "download_pdf: path must be a non-empty string")
    assert.has_error(function() im.reports:download_pdf(225634, "") end)
    assert.has_error(function() im.reports:download_pdf(225634, dir .. "/x.pdf", 5) end)
    assert.has_error(function()
      im.reports:download_pdf(225634, dir .. "/x.pdf", { on_progress = "yes" })
    end)
  end)
end)

describe("interviewmocha inside nginx (OpenResty transport)", function()
  local nginx = require("support.nginx")
  local sb = sandbox.fixture()
  local srv, dir

  setup(function()
    dir = sys.tmpdir("im-dl")
    local key = sb.credentials.interviewmocha.api_key
    srv = nginx.start({ locations = [[
      location = /im {
        content_by_lua_block {
          local im = require("assesskit.interviewmocha").new{ api_key = "]] .. key .. [[",
            v2_url = "]] .. sb.url .. [[/v2", v3_url = "]] .. sb.url .. [[/v3", max_retries = 0 }
          local links, err = im.tests:links(114110)
          if not links then ngx.say("links: ", tostring(err)) return end
          local r, err2 = im.reports:get(225634, { report_type = 3 })
          if not r then ngx.say("report: ", tostring(err2)) return end
          local n, err3 = im.reports:download_pdf(r, "]] .. dir .. [[/ngx.pdf")
          if not n then ngx.say("pdf: ", tostring(err3)) return end
          ngx.say(#links, " ", string.format("%d", r.sections[1].sectionId), " ", n, " ",
            r.pdfReportUrl)
        }
      }
    ]] })
  end)

  teardown(function()
    if srv then srv:stop() end
    if dir then sys.rmdir(dir) end
  end)

  it("lists links, reads a report and saves its PDF byte for byte from a content handler", function()
    local h = assert(io.popen("curl -s --max-time 20 '" .. srv:url("/im") .. "'"))
    local out = h:read("*a")
    h:close()
    local nlinks, section, n, url = out:match("^(%d+) (%d+) (%d+) (%S+)")
    assert.is_not_nil(nlinks, out)
    assert.equal("3", nlinks)
    assert.equal("1465186", section)
    local want = sb:request("GET", url:sub(#sb.url + 1)).body
    assert.equal(#want, tonumber(n))
    assert.equal(want, read(dir .. "/ngx.pdf"))
  end)
end)
