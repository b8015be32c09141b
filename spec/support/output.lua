--- busted output handler of `make test` (.busted): busted's terminal output (one character a
-- test, then the summary and the failures) with each spec file's name printed as the file
-- starts, so a run of a few minutes shows where it is.
-- @module support.output

return function(options)
  local busted = require("busted")
  local base = options.defaultOutput or "plainTerminal"
  if base:match("%.lua$") or not pcall(require, "busted.outputHandlers." .. base) then
    base = "plainTerminal"
  end
  local handler = require("busted.outputHandlers." .. base)(options)
  local subscribe = handler.subscribe
  handler.subscribe = function(self, opts)
    subscribe(self, opts)
    busted.subscribe({ "file", "start" }, function(file)
      io.write("\n", file.name, " ")
      io.flush()
      return nil, true
    end)
  end
  return handler
end
