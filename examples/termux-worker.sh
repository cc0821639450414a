#!/usr/bin/env bash
# termux-worker.sh: an Intent Bus worker in bash and curl, for Termux on Android (or any
# machine with bash, curl, sed, grep and tr). No SDK, no jq, no port opened on the phone.
#
# It long-polls the bus for jobs of one goal and runs a command for each. The command
# gets the job's payload on stdin, as the exact JSON it was published with (as with
# `intent-bus listen --exec`), and INTENT_ID, INTENT_GOAL and INTENT_ATTEMPT in its
# environment. Exit 0 fulfils the
# job with the command's stdout (a text result; RESULT_TYPE=json sends stdout as JSON);
# any other exit fails it with the exit code and the end of stderr, and the bus retries
# it or, after its last attempt, makes it a dead letter.
#
# Run it (Termux: `pkg install curl` once):
#
#   export INTENT_BUS_URL=https://bus.example.com INTENT_API_KEY=tk_... GOAL=notify
#   bash termux-worker.sh 'termux-notification --title "Intent Bus" --content "$(cat)"'
#
# The command is the first argument, or JOB_COMMAND when there is none; it runs with
# `sh -c`. Then, from anywhere: intent-bus publish notify '{"text":"hello"}' --wait
#
# Settings (environment):
#   INTENT_BUS_URL  the bus (default http://127.0.0.1:8080)
#   INTENT_API_KEY  the API key (else the first line of ~/.apikey)
#   GOAL            the goal to take jobs of (required)
#   NAMESPACE       the namespace (default "default")
#   WORKER_ID       sent as X-Worker-ID, for jobs published with --target
#   CAPABILITIES    comma list sent as X-Worker-Capabilities, for jobs with --capability
#   JOB_COMMAND     the command, when no argument names it
#   RESULT_TYPE     text (default) or json
#   WAIT            seconds each claim waits for a job, 0-30 (default 25)
#   MAX_JOBS        stop after this many jobs (default 0: never)
#
# Requests carry the key in X-API-KEY and are not HMAC-signed: reach the bus over HTTPS,
# and leave BUS_REQUIRE_SIGNATURES off for this worker. The key never appears in the
# process list (curl reads it from a private file). Ctrl-C or SIGTERM stops it: a
# claim waiting for a job ends at once, a job that is running finishes and is reported.
# With a WORKER_ID it obeys the bus's admin: `intent-bus admin workers quiet WORKER_ID`
# pauses it (it asks again every 5 s until `resume`), `stop` ends it (exit 0) once its
# job is reported.
set -u

log() { printf 'termux-worker: %s\n' "$*" >&2; }

URL=${INTENT_BUS_URL:-http://127.0.0.1:8080}
URL=${URL%/}
KEY=${INTENT_API_KEY:-}
if [ -z "$KEY" ] && [ -r "$HOME/.apikey" ]; then
  KEY=$(head -n 1 "$HOME/.apikey" | tr -d ' \t\r\n')
fi
GOAL=${GOAL:-}
COMMAND=${1:-${JOB_COMMAND:-}}
NAMESPACE=${NAMESPACE:-default}
WORKER_ID=${WORKER_ID:-}
CAPABILITIES=${CAPABILITIES:-}
RESULT_TYPE=${RESULT_TYPE:-text}
WAIT=${WAIT:-25}
MAX_JOBS=${MAX_JOBS:-0}

[ -n "$KEY" ] || { log 'set INTENT_API_KEY (or write the key to ~/.apikey)'; exit 2; }
[ -n "$GOAL" ] || { log 'set GOAL, the goal to take jobs of'; exit 2; }
[ -n "$COMMAND" ] || { log "usage: GOAL=... $0 'COMMAND' (or set JOB_COMMAND)"; exit 2; }
case $RESULT_TYPE in text | json) ;; *) log 'RESULT_TYPE is text or json'; exit 2 ;; esac
case $WAIT in '' | *[!0-9]*) log 'WAIT is a number of seconds, 0-30'; exit 2 ;; esac
case $MAX_JOBS in '' | *[!0-9]*) log 'MAX_JOBS is a number'; exit 2 ;; esac

umask 077
TMP=$(mktemp -d "${TMPDIR:-/tmp}/termux-worker.XXXXXX") || exit 1
# Only this shell cleans up: a subshell killed early can run an inherited EXIT trap.
MAIN_PID=$BASHPID
trap '[ "$BASHPID" = "$MAIN_PID" ] && rm -rf "$TMP"' EXIT
# Headers curl reads from a file (curl -H @file), so the key is not in its arguments.
{
  printf 'X-API-KEY: %s\n' "$KEY"
  [ -n "$WORKER_ID" ] && printf 'X-Worker-ID: %s\n' "$WORKER_ID"
  [ -n "$CAPABILITIES" ] && printf 'X-Worker-Capabilities: %s\n' "$CAPABILITIES"
} >"$TMP/headers-out"

stopping=0
trap 'stopping=1' INT TERM

# Percent-encodes a query value: only A-Z a-z 0-9 - . _ ~ stay as they are.
urlencode() {
  local LC_ALL=C s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# A JSON string of $1 (control characters other than \n \r \t were removed before).
json_string() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

# The content of a file with the control characters JSON cannot hold removed, and
# without its final newline.
text_of() {
  local t
  t=$(tr -d '\000-\010\013\014\016-\037' <"$1"; printf x)
  t=${t%x}
  printf '%s' "${t%$'\n'}"
}

# request METHOD PATH [JSON]: sets CODE (000 when the bus could not be reached) and ANSWER.
# A Ctrl-C or SIGTERM ends a claim that is waiting for a job; other requests finish.
request() {
  local data=${3:-} curl_pid
  local args=(-sS -X "$1" -H @"$TMP/headers-out" -D "$TMP/headers-in" -o "$TMP/answer"
    -w '%{http_code}' --max-time $((WAIT + 20)))
  [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data-binary @-)
  : >"$TMP/answer"
  : >"$TMP/headers-in"
  printf '%s' "$data" | curl "${args[@]}" "$URL$2" >"$TMP/code" 2>"$TMP/curl-error" &
  curl_pid=$!
  while :; do
    wait "$curl_pid"
    kill -0 "$curl_pid" 2>/dev/null || break
    # wait was interrupted by a signal: stop waiting for a job, but finish a report.
    if [ "$stopping" -eq 1 ] && [ "${2#/claim}" != "$2" ]; then kill "$curl_pid" 2>/dev/null; fi
  done
  CODE=$(cat "$TMP/code")
  case $CODE in [1-5][0-9][0-9]) ;; *) CODE=000 ;; esac
  ANSWER=$(cat "$TMP/answer")
}

# The command an admin gave this worker (X-Intent-Worker-Command: quiet or stop), or "".
worker_command() {
  grep -i '^x-intent-worker-command:' "$TMP/headers-in" | tail -n 1 | sed 's/^[^:]*: *//' |
    tr -cd 'a-z'
}

# The Retry-After the bus sent, or $1.
retry_after() {
  local v
  v=$(grep -i '^retry-after:' "$TMP/headers-in" | tail -n 1 | sed 's/^[^:]*: *//; s/[^0-9.].*//')
  printf '%s' "${v:-$1}"
}

# field NAME PATTERN: a top-level field of the claimed job. The fields the bus sends
# before "payload" are searched first, so that a payload holding the same names (as
# object keys) cannot be taken for them.
field() {
  local head=${ANSWER%%\"payload\":*} v
  v=$(printf '%s' "$head" | grep -o "\"$1\":$2" | head -n 1 | sed "s/^\"$1\"://; s/\"//g")
  [ -n "$v" ] || v=$(printf '%s' "$ANSWER" | grep -o "\"$1\":$2" | tail -n 1 | sed "s/^\"$1\"://; s/\"//g")
  printf '%s' "$v"
}

run_job() {
  local id token attempt lease pid status body
  id=$(field id '"[0-9a-f]\{32\}"')
  token=$(field claim_token '"[0-9a-f]\{32\}"')
  attempt=$(field claim_attempts '[0-9]*')
  lease=$(field claim_timeout '[0-9]*')
  if [ -z "$id" ] || [ -z "$token" ]; then
    log "cannot read the claimed job: ${ANSWER:0:200}"
    return
  fi
  log "job $id (attempt ${attempt:-?})"

  # The bus sends the payload last, as published: everything after the first "payload":
  # key (a quote inside a string before it is escaped, \", so cannot end such a key).
  local payload=${ANSWER#*\"payload\":}
  printf '%s' "${payload%\}}" >"$TMP/job"
  INTENT_ID=$id INTENT_GOAL=$GOAL INTENT_ATTEMPT=${attempt:-1} \
    sh -c "$COMMAND" <"$TMP/job" >"$TMP/out" 2>"$TMP/err" &
  pid=$!
  # While the command runs, look at it five times a second and extend the lease every
  # half lease. (No helper process: nothing to kill, nothing left behind.)
  lease=${lease:-60}
  local ticks=0 every=$(((lease / 2 > 5 ? lease / 2 : 5) * 5))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.2
    ticks=$((ticks + 1))
    if [ "$ticks" -ge "$every" ]; then
      ticks=0
      printf '{"claim_token":"%s","seconds":%s}' "$token" "$lease" |
        curl -sS -o /dev/null -X POST -H @"$TMP/headers-out" -H 'Content-Type: application/json' \
          --data-binary @- --max-time 10 "$URL/extend_claim/$id" 2>/dev/null
    fi
  done
  wait "$pid"
  status=$?

  local reason tail
  if [ "$status" -eq 0 ]; then
    if [ "$RESULT_TYPE" = json ]; then
      local out
      out=$(text_of "$TMP/out")
      body="{\"claim_token\":\"$token\",\"result_type\":\"json\",\"result\":${out:-null}}"
    else
      body="{\"claim_token\":\"$token\",\"result_type\":\"text\",\"result\":$(json_string "$(text_of "$TMP/out")")}"
    fi
    request POST "/fulfill/$id" "$body"
    case $CODE in
      200) log "job $id done"; return ;;
      404) log "job $id: the lease was lost before the result arrived"; return ;;
    esac
    if [ "$RESULT_TYPE" != json ]; then
      log "job $id: the bus refused the result ($CODE): $ANSWER"
      return
    fi
    # Not JSON after all: fail the job, with the bus's answer as the reason.
    reason='stdout is not JSON'
    printf '%s' "$ANSWER" >"$TMP/err"
  else
    reason="exit $status"
  fi
  tail -c 400 "$TMP/err" >"$TMP/tail"
  tail=$(text_of "$TMP/tail")
  request POST "/fail/$id" "{\"claim_token\":\"$token\",\"error\":$(json_string "$reason${tail:+: $tail}")}"
  case $CODE in
    200) log "job $id failed ($reason); it is $(printf '%s' "$ANSWER" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p') now" ;;
    404) log "job $id: the lease was lost before the failure arrived" ;;
    *) log "job $id: could not report the failure ($CODE): $ANSWER" ;;
  esac
}

query="goal=$(urlencode "$GOAL")&namespace=$(urlencode "$NAMESPACE")&wait=$WAIT"
done_jobs=0
backoff=1
quiet=0
log "taking jobs of \"$GOAL\" from $URL"
while [ "$stopping" -eq 0 ]; do
  if [ "$MAX_JOBS" -gt 0 ] && [ "$done_jobs" -ge "$MAX_JOBS" ]; then
    break
  fi
  request POST "/claim?$query"
  # Stopped while waiting for a job: a job that came with the answer still runs.
  [ "$stopping" -eq 1 ] && [ "$CODE" != 200 ] && break
  case $CODE in
    200)
      backoff=1
      quiet=0
      run_job
      done_jobs=$((done_jobs + 1))
      ;;
    204)
      # An admin's `intent-bus admin workers quiet|stop WORKER_ID` (needs WORKER_ID).
      case $(worker_command) in
        stop)
          log 'the bus says stop'
          break
          ;;
        quiet)
          [ "$quiet" -eq 1 ] || log 'the bus says quiet: no new jobs until resumed'
          quiet=1
          sleep "$(retry_after 5)"
          ;;
        *)
          [ "$quiet" -eq 1 ] && log 'resumed'
          quiet=0
          sleep "$(retry_after 1)"
          ;;
      esac
      ;;
    401 | 403)
      log "the bus refused the key ($CODE): $ANSWER"
      exit 1
      ;;
    429 | 5??)
      log "the bus is busy ($CODE); retrying"
      sleep "$(retry_after 5)"
      ;;
    000)
      log "cannot reach $URL ($(cat "$TMP/curl-error")); retrying in $backoff s"
      sleep "$backoff"
      backoff=$((backoff < 32 ? backoff * 2 : 60))
      ;;
    *)
      log "unexpected answer ($CODE): $ANSWER"
      exit 1
      ;;
  esac
done
log "stopped after $done_jobs jobs"
