#!/usr/bin/env node
// A flowlog worker in JavaScript, with nothing but Node's standard library (Node 18 or later).
//
// A workflow node that names a queue is not run by flowlog: it is offered on that queue as a
// task, and a worker like this one leases it (a long poll), runs it, keeps its lease alive with
// heartbeats, and answers with the outcome. The REST calls are in docs/workers.md; this file is
// meant to be copied: change the table of handlers below and keep the rest.
//
//   FLOWLOG_URL=http://127.0.0.1:8080 FLOWLOG_QUEUE=js node examples/worker.js
//
// Configuration, from the environment or the command line (the command line wins):
//   FLOWLOG_URL          --url          the server (default http://127.0.0.1:8080)
//   FLOWLOG_TOKEN        --token        a bearer token, when the server has tokens (prefer the
//                                       environment: the command line is visible in `ps`)
//   FLOWLOG_QUEUE        --queue        the queue to take tasks from (required)
//   FLOWLOG_WORKER_ID    --worker-id    who this worker is, as the console shows the holder of a
//                                       task (default js-<host>-<pid>)
//   FLOWLOG_CONCURRENCY  --concurrency  tasks run at once (default 4)
//                        --once         run what the queue offers, then exit once it is empty
//
// Each event is one JSON line on stdout, with the flow and node it concerns: worker started,
// task started, task completed, task failed (the handler threw), task abandoned (the flow no
// longer wants it), lease lost, complete failed, heartbeat failed, retry, stopping, worker
// stopped. SIGTERM or SIGINT: stop polling, finish the tasks in hand, exit 0 (a second signal
// exits at once: flowlog offers those tasks again when their leases lapse, as it does for a
// worker that died). Exit 1: the server refused a poll (a bad token, say); 2: bad settings.

'use strict';

const crypto = require('node:crypto');
const os = require('node:os');
const { setTimeout: sleep } = require('node:timers/promises');
const { parseArgs } = require('node:util');

// -- handlers ---------------------------------------------------------------------------------
//
// One handler per node name. A handler gets the task (its context is the flow's context when
// the task was leased) and an AbortSignal, and returns the node's outcome:
//   { result: 'text recorded as the node result',
//     context: { key: value },        // context keys to set with the outcome
//     contextRemoved: ['key'] }       // context keys to remove
// Throwing fails the node with the error's message (and its code, when it is a whole number):
// the flow then follows the node's retry policy, then its fail transition.
//
// The signal is aborted when the flow no longer wants the result (stopped, canceled, or the
// lease was lost): pass it to whatever the handler awaits (fetch, child processes, timers) so
// the work stops at once instead of running on for nothing.

const handlers = {
  async render(task, signal) {
    const { frame, renderMs = 0 } = task.context;
    if (frame === undefined) {
      throw new Error('the context has no frame to render');
    }
    // The pretend work: a real renderer would go here. renderMs lets a demo (and the tests)
    // have a task in hand long enough to stop the worker or cancel the flow meanwhile.
    await sleep(renderMs, undefined, { signal });
    return { result: `rendered frame ${frame}`, context: { rendered: frame } };
  },
};

// -- configuration ----------------------------------------------------------------------------

function configure() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      queue: { type: 'string' },
      'worker-id': { type: 'string' },
      concurrency: { type: 'string' },
      once: { type: 'boolean', default: false },
    },
  });
  const env = process.env;
  const host = os.hostname().replace(/[^A-Za-z0-9_.:@/-]/g, '-');
  const config = {
    url: (values.url ?? env.FLOWLOG_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, ''),
    token: values.token ?? env.FLOWLOG_TOKEN ?? '',
    queue: values.queue ?? env.FLOWLOG_QUEUE ?? '',
    workerId: values['worker-id'] ?? env.FLOWLOG_WORKER_ID ?? `js-${host}-${process.pid}`,
    concurrency: Number(values.concurrency ?? env.FLOWLOG_CONCURRENCY ?? 4),
    once: values.once,
  };
  if (!config.queue) {
    throw new Error('no queue: set FLOWLOG_QUEUE or pass --queue');
  }
  // A poll leases at most 100 tasks at once.
  if (!Number.isInteger(config.concurrency) || config.concurrency < 1 || config.concurrency > 100) {
    throw new Error('the concurrency must be a whole number from 1 to 100');
  }
  return config;
}

// -- logging ----------------------------------------------------------------------------------

function log(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
}

function taskFields(task) {
  return { workFlowId: task.workFlowId, nodeId: task.nodeId, nodeName: task.nodeName };
}

// -- the REST calls ---------------------------------------------------------------------------

/** A refusal in flowlog's envelope: the HTTP status and flowlog's code (docs/api.md). */
class ApiError extends Error {
  constructor(status, code, message) {
    super(`${status} (${code}): ${message}`);
    this.status = status;
    this.code = code;
  }
}

// Statuses worth sending again: flowlog answers 503 while its database is out of reach, and a
// proxy in front of it answers 502 or 504 while it restarts. Any other refusal would only be
// refused again.
const RETRY_STATUSES = new Set([502, 503, 504]);
const FIRST_BACKOFF_MS = 250;
const MOST_BACKOFF_MS = 10_000;

function backoff(attempt) {
  // Exponential, with "full jitter": workers cut off together do not come back together.
  const ceiling = Math.min(MOST_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (attempt - 1));
  return Math.random() * ceiling;
}

/**
 * POSTs body to path and answers the envelope's data, sending it again (after a backoff) when
 * the network fails or the server answers 502/503/504, at most `attempts` times.
 *
 * The request keeps one Idempotency-Key across its attempts: when an attempt's answer is lost
 * on the way back, the next one must not do the thing twice. A poll sent again answers the
 * tasks the lost one leased (instead of leaving them leased to nobody until their lease lapses).
 */
async function post(config, path, body, { attempts = 5, signal, timeoutMs = 30_000 } = {}) {
  const headers = {
    'Content-Type': 'application/json',
    'Idempotency-Key': crypto.randomUUID(),
  };
  if (config.token) {
    headers.Authorization = `Bearer ${config.token}`;
  }
  for (let attempt = 1; ; attempt += 1) {
    signal?.throwIfAborted();
    let failure;
    // Each attempt ends when its deadline passes (a connection that hangs is a network failure
    // too) or when `signal` aborts (the worker stops). AbortSignal.any would say it shorter,
    // but Debian 12's Node 18 lacks it.
    const attemptEnd = new AbortController();
    const deadline = setTimeout(() => attemptEnd.abort(new Error('timed out')), timeoutMs);
    const stop = () => attemptEnd.abort(signal.reason);
    signal?.addEventListener('abort', stop, { once: true });
    try {
      const response = await fetch(config.url + path, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        signal: attemptEnd.signal,
      });
      if (!RETRY_STATUSES.has(response.status)) {
        const envelope = await response.json().catch(() => null);
        if (response.ok && envelope?.code === 0) {
          return envelope.data;
        }
        const message = envelope?.message ?? response.statusText;
        throw new ApiError(response.status, envelope?.code, message);
      }
      failure = `HTTP ${response.status}`;
    } catch (error) {
      if (error instanceof ApiError || signal?.aborted) {
        throw error;
      }
      failure = error.cause?.code ?? error.message; // fetch's TypeError hides the reason there
    } finally {
      clearTimeout(deadline);
      signal?.removeEventListener('abort', stop);
    }
    if (attempt >= attempts) {
      throw new Error(`POST ${path}: ${failure} (after ${attempt} attempts)`);
    }
    const waitMs = Math.round(backoff(attempt));
    log('retry', { path, attempt, failure, waitMs });
    await sleep(waitMs, undefined, signal ? { signal } : undefined);
  }
}

// -- running a task ---------------------------------------------------------------------------

/**
 * Heartbeats the task every third of its lease while its handler runs, and aborts `work` when
 * the flow no longer wants it: the answer says wanted false, the task is unknown (404), or no
 * heartbeat got through for a whole lease (flowlog has then offered the task to someone else).
 * Returns the function that stops the heartbeats.
 */
function keepAlive(config, task, work) {
  const leaseMs = task.leaseSeconds * 1000;
  let lastBeat = Date.now();
  let timer;
  let stopped = false;
  const beat = async () => {
    try {
      // Few attempts: the next beat comes soon anyway.
      const answer = await post(config, '/api/v1/tasks/heartbeat', { taskToken: task.taskToken },
        { attempts: 2, timeoutMs: leaseMs / 3 });
      lastBeat = Date.now();
      if (!answer.wanted) {
        work.abort(new Error(`the flow no longer wants it (it is ${answer.status || 'gone'})`));
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        work.abort(new Error('flowlog knows no such task'));
      } else if (Date.now() - lastBeat >= leaseMs) {
        work.abort(new Error('no heartbeat got through for a whole lease'));
      } else {
        log('heartbeat failed', { ...taskFields(task), error: error.message });
      }
    }
    if (!stopped && !work.signal.aborted) {
      timer = setTimeout(beat, leaseMs / 3);
    }
  };
  timer = setTimeout(beat, leaseMs / 3);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** What a handler's outcome (or its error) asks flowlog to record. */
async function outcomeOf(task, signal) {
  try {
    // hasOwn: a node named "constructor" must not run what every object inherits.
    if (!Object.hasOwn(handlers, task.nodeName)) {
      throw new Error(`this worker has no handler for node ${task.nodeName}`);
    }
    const done = (await handlers[task.nodeName](task, signal)) ?? {};
    // flowlog records the result as text: anything else is recorded as its JSON.
    const { result = '' } = done;
    const text = typeof result === 'string' ? result : JSON.stringify(result);
    return { status: 'success', ...done, result: text };
  } catch (error) {
    const message = String(error?.message ?? error).slice(0, 1000); // flowlog keeps 1000
    const code = Number.isInteger(error?.code) && error.code > 0 ? error.code : undefined;
    return { status: 'fail', message, code };
  }
}

async function runTask(config, task) {
  log('task started', { ...taskFields(task), attempt: task.attempt });
  const work = new AbortController();
  const stopBeats = keepAlive(config, task, work);
  let outcome;
  try {
    outcome = await outcomeOf(task, work.signal);
  } finally {
    stopBeats();
  }
  if (work.signal.aborted) {
    // Nobody wants this answer: the flow moved on, or the task is someone else's now.
    log('task abandoned', { ...taskFields(task), reason: work.signal.reason.message });
    return;
  }
  try {
    const answer = await post(config, '/api/v1/tasks/complete',
      { taskToken: task.taskToken, ...outcome }, { attempts: 8 });
    log(outcome.status === 'fail' ? 'task failed' : 'task completed', {
      ...taskFields(task),
      status: outcome.status,
      message: outcome.message,
      flowStatus: answer.status,
    });
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      // This sending did nothing: the lease ran out (the task was offered again, perhaps to
      // another worker), the flow moved on, or the task was completed already. Nothing to
      // undo and nobody to tell: log it and go on.
      log('lease lost', { ...taskFields(task), error: error.message });
    } else {
      log('complete failed', { ...taskFields(task), error: error.message });
    }
  }
}

// -- the poll loop ----------------------------------------------------------------------------

async function work(config, stopping) {
  const running = new Set();
  const waitSeconds = config.once ? 1 : 20;
  try {
    await pollAndRun(config, stopping, running, waitSeconds);
  } finally {
    // Stopping, or a poll was refused: either way the tasks in hand are finished and answered.
    await Promise.allSettled(running);
  }
}

async function pollAndRun(config, stopping, running, waitSeconds) {
  while (!stopping.aborted) {
    if (running.size >= config.concurrency) {
      await Promise.race(running); // a slot must free up before leasing more
      continue;
    }
    let tasks;
    try {
      const data = await post(config, '/api/v1/tasks/poll', {
        queue: config.queue,
        workerId: config.workerId,
        max: config.concurrency - running.size,
        waitSeconds,
      }, { attempts: Infinity, signal: stopping, timeoutMs: (waitSeconds + 15) * 1000 });
      tasks = data.tasks;
    } catch (error) {
      // Aborted by a stop signal: the server hands back what a poll that hung up leased.
      if (stopping.aborted) {
        break;
      }
      throw error; // a refusal (a bad token, a bad queue name): trying again will not help
    }
    if (tasks.length === 0 && config.once && running.size === 0) {
      break;
    }
    for (const task of tasks) {
      const run = runTask(config, task).finally(() => running.delete(run));
      running.add(run);
    }
  }
}

async function main() {
  let config;
  try {
    config = configure();
  } catch (error) {
    log('bad configuration', { error: error.message });
    return 2;
  }
  const stopper = new AbortController();
  const stop = (signal) => {
    if (stopper.signal.aborted) {
      log('stopped at once', { signal });
      process.exit(1);
    }
    log('stopping', { signal });
    stopper.abort(new Error(`${signal} received`));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  log('worker started', {
    url: config.url, queue: config.queue, workerId: config.workerId,
    concurrency: config.concurrency, once: config.once,
  });
  try {
    await work(config, stopper.signal);
  } catch (error) {
    log('worker failed', { error: error.message });
    return 1;
  }
  log('worker stopped');
  return 0;
}

main().then((code) => {
  process.exitCode = code;
  // Nothing else may keep the process alive: the signal handlers would.
  process.removeAllListeners('SIGTERM');
  process.removeAllListeners('SIGINT');
});
