#!/usr/bin/env node
// Drive the jupyter-faas function server with the official OpenWhisk JavaScript client
// (npm `openwhisk`), the way a user's node program would, and print ONE JSON line that
// records what every call returned. tests/server/test_openwhisk_js.py runs this script
// and asserts on each field, so the script itself only records and never judges.
//
// Environment:
//   FAAS_APIHOST  e.g. http://127.0.0.1:3233 (with the scheme: without it the client uses https)
//   FAAS_API_KEY  uuid:key of the namespace (the server's <data_dir>/auth.guest)
//   FAAS_IMAGE    an image running the jupyter-faas runtime, for the blackbox action
//   FAAS_PREFIX   prefix of every entity name, so runs never collide (default "js")
'use strict'

const openwhisk = require('openwhisk')

const POLL_MS = 100
const POLL_LIMIT_MS = 30000

const env = name => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set; see the header of ${__filename}`)
  return value
}

const ow = openwhisk({ apihost: env('FAAS_APIHOST'), api_key: env('FAAS_API_KEY') })
const image = env('FAAS_IMAGE')
const prefix = process.env.FAAS_PREFIX || 'js'
const box = `${prefix}-box`
const py = `${prefix}-py`
const fail = `${prefix}-fail`
const trigger = `${prefix}-trigger`
const rule = `${prefix}-rule`
const alarm = `${prefix}-alarm`

const BOX_CODE = 'def main(args):\n    return {"box": args.get("x", 0) * 2}\n'
const PY_CODE = [
  'def main(args):',
  '    print("hello from", args.get("name"))',
  '    return {"greeting": args.get("greeting", "") + " " + args.get("name", "")}',
  ''
].join('\n')
const PY_CODE_V2 = PY_CODE.replace('" " +', '", " +')
const FAIL_CODE = 'def main(args):\n    return {"error": "no " + args.get("what", "luck")}\n'

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// Poll `probe` until it resolves to something truthy; bounded by POLL_LIMIT_MS.
async function poll (what, probe) {
  const deadline = Date.now() + POLL_LIMIT_MS
  for (;;) {
    try {
      const value = await probe()
      if (value) return value
    } catch (err) {
      if (err.statusCode !== 404 || Date.now() > deadline) throw err
    }
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${POLL_LIMIT_MS} ms`)
    await sleep(POLL_MS)
  }
}

// The parts of a rejection the test looks at.
function rejection (err) {
  return {
    isError: err instanceof Error,
    message: err.message,
    statusCode: err.statusCode,
    body: err.error
  }
}

async function rejected (promise) {
  try {
    return { resolved: await promise }
  } catch (err) {
    return rejection(err)
  }
}

const annotationsOf = doc => Object.fromEntries((doc.annotations || []).map(a => [a.key, a.value]))

async function main () {
  const out = {}

  // Actions: create (blackbox with image + code as a whole body, python:default code), get,
  // list, update.
  out.createBox = await ow.actions.create({
    name: box,
    action: { exec: { kind: 'blackbox', image, code: BOX_CODE } }
  })
  out.createPy = await ow.actions.create({
    name: py,
    kind: 'python:default',
    action: PY_CODE,
    params: { greeting: 'hello' }
  })
  await ow.actions.create({ name: fail, kind: 'python:default', action: FAIL_CODE })
  out.getPy = await ow.actions.get({ name: py })
  out.listNames = (await ow.actions.list({ limit: 0 })).map(a => a.name)
  out.updatePy = await ow.actions.update({ name: py, kind: 'python:default', action: PY_CODE_V2 })

  // Invocations.
  out.invokeResult = await ow.actions.invoke({
    name: py, blocking: true, result: true, params: { name: 'ada' }
  })
  out.invokeBox = await ow.actions.invoke({
    name: box, blocking: true, result: true, params: { x: 4 }
  })
  out.invokeFull = await ow.actions.invoke({ name: py, blocking: true, params: { name: 'bob' } })
  out.invokeFull.annotationMap = annotationsOf(out.invokeFull)
  out.invokeAsync = await ow.actions.invoke({ name: py, params: { name: 'cyd' } })
  const asyncId = out.invokeAsync.activationId

  // Activations of the non-blocking call: get (polled until stored), list, logs, result.
  out.activationGet = await poll('the non-blocking activation', () =>
    ow.activations.get({ name: asyncId }))
  out.activationList = (await ow.activations.list({ name: py, limit: 0 })).map(a => a.activationId)
  out.activationLogs = await ow.activations.logs({ name: asyncId })
  out.activationResult = await ow.activations.result({ name: asyncId })

  // Triggers and rules: fire through an active rule, then disabled, then enabled again.
  out.triggerCreate = await ow.triggers.create({ name: trigger })
  out.ruleCreate = await ow.rules.create({ name: rule, trigger, action: box })
  out.fire = await ow.triggers.invoke({ name: trigger, params: { x: 21 } })
  const fired = await poll('the trigger activation', () =>
    ow.activations.get({ name: out.fire.activationId }))
  out.fireLogs = fired.logs.map(line => JSON.parse(line))
  const child = out.fireLogs[0].activationId
  out.fireChild = await poll('the rule-invoked activation', () =>
    ow.activations.get({ name: child }))
  out.ruleDisable = await ow.rules.disable({ name: rule })
  out.ruleAfterDisable = (await ow.rules.get({ name: rule })).status
  out.fireInactive = await ow.triggers.invoke({ name: trigger, params: { x: 1 } })
  out.ruleEnable = await ow.rules.enable({ name: rule })
  out.ruleAfterEnable = (await ow.rules.get({ name: rule })).status

  // Alarm feed, as wsk does it: the trigger carries the feed annotation, then the feed action.
  out.alarmTrigger = await ow.triggers.create({
    name: alarm,
    trigger: { annotations: [{ key: 'feed', value: '/whisk.system/alarms/alarm' }] }
  })
  out.feedCreate = await ow.feeds.create({
    name: '/whisk.system/alarms/alarm', trigger: alarm, params: { cron: '*/5 * * * *' }
  })
  out.feedRead = await ow.feeds.get({ name: '/whisk.system/alarms/alarm', trigger: alarm })

  // Failures: the client must reject with an Error carrying the server's message.
  out.missing = await rejected(ow.actions.get({ name: `${prefix}-missing` }))
  out.appError = await rejected(ow.actions.invoke({
    name: fail, blocking: true, result: true, params: { what: 'way' }
  }))
  await ow.triggers.create({ name: `${alarm}-bad` })
  out.badFeed = await rejected(ow.feeds.create({
    name: '/whisk.system/alarms/alarm', trigger: `${alarm}-bad`, params: { cron: 'not a cron' }
  }))

  // Delete, then the action is gone.
  out.deleteBox = await ow.actions.delete({ name: box })
  out.afterDelete = await rejected(ow.actions.get({ name: box }))
  return out
}

main().then(
  out => {
    process.stdout.write(JSON.stringify(out) + '\n')
  },
  err => {
    process.stderr.write(`client_calls.js failed: ${err.stack || err}\n`)
    if (err.error) process.stderr.write(`body: ${JSON.stringify(err.error)}\n`)
    process.exitCode = 1
  }
)
