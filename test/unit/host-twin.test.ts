/** Who else serves a host id, from the pollers the Temporal server lists for its queue (workers/host-twin.ts). */
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { liveTwin, LIVE_POLL_MS, workerIdentity } from '../../workers/host-twin';

describe('a host id is one live worker', () => {
  const now = Date.now();
  const gone = spawnSync(process.execPath, ['-e', '0']).pid!;

  it('its own pollers and those of its dead predecessor on this machine do not count', () => {
    expect(liveTwin('h', [{ identity: workerIdentity('h'), lastAccessMs: now }], now)).toBeNull();
    expect(liveTwin('h', [{ identity: `h@${hostname()}/${gone}`, lastAccessMs: now }], now)).toBeNull();
  });

  it('a live process on this machine serving the same host id does, however recent', () => {
    expect(liveTwin('h', [{ identity: `h@${hostname()}/${process.ppid}`, lastAccessMs: now - 10 * LIVE_POLL_MS }], now)).toContain(`pid ${process.ppid} on this machine`);
  });

  it('a worker on another machine does while it polls, and stops counting a long poll after it stopped', () => {
    expect(liveTwin('h', [{ identity: 'h@elsewhere/12', lastAccessMs: now - 5000 }], now)).toContain('h@elsewhere/12 polled');
    expect(liveTwin('h', [{ identity: 'h@elsewhere/12', lastAccessMs: now - LIVE_POLL_MS - 1 }], now)).toBeNull();
    expect(liveTwin('h', [{ identity: 'something else', lastAccessMs: now }], now)).toContain('something else');
  });
});
