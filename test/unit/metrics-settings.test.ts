/** DISKFLOW_METRICS_ADDRESS and DISKFLOW_STALL_AFTER, as operators write them. */
import { describe, expect, it } from 'vitest';
import { stallAfterMs } from '../../config/environment';
import { DEV_METRICS_ADDRESS, metricsSettings, parseMetricsAddress } from '../../workers/metrics/settings';

describe('metrics settings', () => {
  it('metrics are off unless DISKFLOW_METRICS_ADDRESS is set; diskflow dev has a default; off turns even that off', async () => {
    expect(await metricsSettings({})).toBeNull();
    expect(await metricsSettings({}, DEV_METRICS_ADDRESS)).toMatchObject({ host: '127.0.0.1', port: 9464, stallAfterMs: 600_000 });
    expect(await metricsSettings({ DISKFLOW_METRICS_ADDRESS: 'off' }, DEV_METRICS_ADDRESS)).toBeNull();
    const settings = await metricsSettings({ DISKFLOW_METRICS_ADDRESS: '0.0.0.0:9100', DISKFLOW_STALL_AFTER: '90s' });
    expect(settings).toMatchObject({ host: '0.0.0.0', port: 9100, stallAfterMs: 90_000 });
    // The SDK's own exporter stays on loopback, on a port of its own.
    expect(settings!.sdkBindAddress).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('takes host:port, IPv6 in brackets, and refuses anything else naming the variable', () => {
    expect(parseMetricsAddress('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(parseMetricsAddress('metrics.local:80')).toEqual({ host: 'metrics.local', port: 80 });
    for (const bad of ['9464', 'localhost', 'localhost:0', 'localhost:70000', ':9464']) {
      expect(() => parseMetricsAddress(bad), bad).toThrow(/DISKFLOW_METRICS_ADDRESS/);
    }
  });

  it('DISKFLOW_STALL_AFTER is a duration, 10 minutes by default', () => {
    expect(stallAfterMs({})).toBe(600_000);
    expect(stallAfterMs({ DISKFLOW_STALL_AFTER: '5m' })).toBe(300_000);
    expect(stallAfterMs({ DISKFLOW_STALL_AFTER: '1500' })).toBe(1500);
    expect(() => stallAfterMs({ DISKFLOW_STALL_AFTER: 'soon' })).toThrow(/DISKFLOW_STALL_AFTER=soon is not a duration/);
    expect(() => stallAfterMs({ DISKFLOW_STALL_AFTER: '0' })).toThrow(/not a duration/);
  });
});
