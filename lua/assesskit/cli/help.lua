--- Help texts of the `assesskit` command line, one per level (`assesskit --help`,
-- `assesskit talview --help`, `assesskit im report --help`, ...).
-- @internal assesskit.cli.help
local M = {}

local COMMON = [[
Output options (every command):
  --pretty           indented JSON (the default when standard output is a terminal)
  --compact          one-line JSON (the default otherwise)
  --dry-run          print the equivalent curl command, secrets masked; send nothing
  --timeout SECONDS  per-request timeout (default 30)
  -h, --help         this help
]]

--- `assesskit --help`.
M.main = [[
Usage: assesskit [OPTIONS] COMMAND [ARGS]

Drive the Talview v4 and InterviewMocha v2/v3 APIs from the shell.

Commands:
  endpoints [FILTER]            list the Talview endpoints (name, method, path)
  talview NAME [--PARAM VALUE ...] [--all | --each FILE|- --parallel N]
                                call a Talview endpoint by its catalogue name
  im links TEST_ID              the links of an InterviewMocha test
  im report ID [--type N] [--pdf FILE]
                                a candidate's InterviewMocha test report
  config                        show the configuration in force (secrets masked)
  help [COMMAND]                help on a command

]] .. COMMON .. [[
  --version          print the version

Credentials never go on the command line. They come from a running sandbox
(ASSESSKIT_SANDBOX_DIR), from environment variables (ASSESSKIT_TALVIEW_URL,
ASSESSKIT_CLIENT_ID, ASSESSKIT_CLIENT_SECRET, ASSESSKIT_USERNAME, ASSESSKIT_PASSWORD,
ASSESSKIT_JWT_ISSUER, ASSESSKIT_JWT_KEY_FILE, ASSESSKIT_ACCESS_TOKEN, ASSESSKIT_IM_API_KEY,
...) or from a config file (ASSESSKIT_CONFIG, default ~/.config/assesskit/config.lua or
config.json). See `assesskit help config` and docs/cli.md.

Exit status: 0 success, 1 API or network error, 2 usage or configuration error.
]]

--- `assesskit endpoints --help`.
M.endpoints = [[
Usage: assesskit endpoints [FILTER] [--json]

List the Talview v4 catalogue: one endpoint a line, its name, method and path. FILTER keeps
the endpoints whose name or path contains it (case-insensitive), e.g. `candidate` or
`actions.`.

Options:
  --json       one JSON object a line: {"method":..., "name":..., "path":...}
  -h, --help   this help
]]

--- `assesskit talview --help`.
M.talview = [[
Usage: assesskit talview NAME [--PARAM VALUE ...] [-] [--all] [-- --PARAM VALUE ...]
       assesskit talview NAME --each FILE|- [--parallel N] [--PARAM VALUE ...]
                     [--journal FILE] [--key FIELD] [--retry-failed]

Call the Talview endpoint NAME (see `assesskit endpoints`) and print its JSON answer.

Parameters:
  --PARAM VALUE      a parameter by its catalogue name: path placeholders (--id 42), query
                     parameters of GET/DELETE (--pageSize 50), body fields of POST/PUT/PATCH
                     (--email a@example.com). VALUE is typed like JSON: 42, 1.5, true, false,
                     null, [1,2] and {"a":1} are those values, anything else a string (so
                     007 and +33612345678 stay strings). A repeated --PARAM makes an array.
  -                  also read a JSON object of parameters from standard input
                     (command-line parameters win)
  -- --PARAM VALUE   after a bare --, every --PARAM is a parameter, even one named like an
                     option below (--all, --timeout, ...)
  A parameter the endpoint does not document is refused, naming the documented one nearest
  to it (--pagesize: did you mean --pageSize?); --raw-param sends it as given.

Options:
  --all              walk every page of a list endpoint and print one JSON object a line;
                     a progress bar goes to standard error when it is a terminal
  --save FILE        write the answer's body as it came (an image, say) to FILE; an error
                     answer leaves FILE as it was
  --raw-param        send parameters the endpoint does not document, as given
  --each FILE|-      one call per line of FILE (- : standard input), each line a JSON object
                     of parameters (over the command line's); one JSON line per input line,
                     in input order: {"line": N, "value": ...} or {"line": N, "error": {...}};
                     exit status 1 when a line failed; a progress bar on a terminal
  --parallel N       with --each: N calls in flight (default 8, at most 256)
  --journal FILE     with --each: record every line's outcome in FILE; run again after a
                     crash with the same FILE: lines done before print their recorded
                     answer without a call, a line whose answer was lost (it may have been
                     done) is an error of kind "ambiguous" and is not sent again
  --key FIELD        with --journal: name each line by this field of its object (an email,
                     an id) instead of its number
  --retry-failed     with --journal: call again the lines that failed with an error that is
                     not retryable (a 422, say); retryable failures are always called again
]] .. COMMON .. [[

`assesskit talview NAME --help` describes one endpoint and its parameters.

Examples:
  assesskit talview models.candidate.list --pageSize 5
  assesskit talview models.candidate.get --id 42 --expand status
  assesskit talview models.candidate.list --all > candidates.jsonl
  echo '{"email": "ada@example.com"}' | assesskit talview models.candidate.create -
  assesskit talview models.candidate.create --each people.jsonl --parallel 16 > created.jsonl
  assesskit talview models.candidate.create --each people.jsonl --journal people.journal \
      --key email > created.jsonl
  assesskit --dry-run talview actions.invite --assessmentSectionID 7 \
      --endDate 2030-01-01T00:00:00Z --candidates '[{"id": 42}]'
]]

--- `assesskit im --help`.
M.im = [[
Usage: assesskit im COMMAND [ARGS]

InterviewMocha (iMocha).

Commands:
  links TEST_ID                     the links of a test (v2 API)
  report ID [--type N] [--pdf FILE] a candidate's test report (v3 API); ID is the test
                                    invitation id

]] .. COMMON .. [[

The API key comes from ASSESSKIT_IM_API_KEY, the config file or the sandbox.
]]

--- `assesskit im links --help`.
M.im_links = [[
Usage: assesskit im links TEST_ID

Print the links of the InterviewMocha test TEST_ID as a JSON array
(GET /v2/org/tests/{testId}/testlinks).

]] .. COMMON

--- `assesskit im report --help`.
M.im_report = [[
Usage: assesskit im report ID [--type N] [--pdf FILE]

Print the report of the test invitation ID as JSON (GET /v3/reports/{ID}?reportType=N).

Options:
  --type N     report type: 1 (default), 2 or 3
  --pdf FILE   also download the report's PDF to FILE (a progress bar goes to standard
               error when it is a terminal)
]] .. COMMON

--- `assesskit config --help` (and `assesskit help config`).
M.config = [[
Usage: assesskit config

Show where the configuration comes from and every setting, secrets as ***.

Sources, first match wins:
  1. ASSESSKIT_SANDBOX_DIR=DIR: use the sandbox running in run directory DIR (its
     credentials.json); nothing else is read. ASSESSKIT_GRANT=password picks the demo user
     instead of the demo JWT service account.
  2. Environment variables, each overriding the same setting of the config file:
       ASSESSKIT_TALVIEW_URL      Talview base URL (default https://apiv4.talview.com)
       ASSESSKIT_TOKEN_URL        token URL (default BASE/oauth2/token)
       ASSESSKIT_GRANT            password, jwt or token (default: guessed from what is set)
       ASSESSKIT_CLIENT_ID, ASSESSKIT_CLIENT_SECRET, ASSESSKIT_USERNAME, ASSESSKIT_PASSWORD
       ASSESSKIT_JWT_ISSUER, ASSESSKIT_JWT_KEY_FILE, ASSESSKIT_JWT_KEY_PASSPHRASE,
       ASSESSKIT_JWT_SCOPE, ASSESSKIT_JWT_AUDIENCE
       ASSESSKIT_ACCESS_TOKEN     a ready access token
       ASSESSKIT_IM_API_KEY, ASSESSKIT_IM_V2_URL, ASSESSKIT_IM_V3_URL
       ASSESSKIT_CA_FILE          CA bundle for both APIs
       ASSESSKIT_PROXY            proxy URL for both APIs
       ASSESSKIT_ALLOW_HTTP       true: plain http:// to any host (default false: loopback only)
  3. The config file: ASSESSKIT_CONFIG, else $XDG_CONFIG_HOME/assesskit/config.lua or
     config.json (~/.config/assesskit/...). A Lua file:
       talview = {
         base_url = "https://apiv4.talview.com",
         auth = { grant = "jwt", client_id = "...", issuer = "...",
                  private_key_file = "/path/key.pem", scope = "..." },
       }
       interviewmocha = { api_key = "..." }
       timeout = 60          -- connection options, for both APIs or inside one's table:
                             -- ca_file, ca_path, proxy, user_agent (strings), timeout,
                             -- connect_timeout, max_retries, max_response_size,
                             -- retry_base_delay, retry_max_delay, max_retry_after
                             -- (numbers), allow_http (boolean)
     A JSON file holds the same object. An unknown key or a wrong type is an error naming
     the nearest key. Keep it private (chmod 600): assesskit warns when other users can
     read it.
]]

return M
