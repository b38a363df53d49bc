/**
 * Watching the disks this host serves: a daemon found gone (killed, crashed, the host restarted)
 * is recorded on its image (`served.lost`, `lastError`): its VM lost its disk, never silently, and
 * the check offers the mend that serves it again. A worker runs this as it starts and then every
 * few seconds. Directories of disks no longer served here are removed.
 */
import { rm } from 'node:fs/promises';
import type { HostConnections } from '../host/connections';
import { readImage } from '../images/image-store';
import { markServingLost } from '../images/lifecycle';
import { servedHere } from './daemon';

/** A daemon being started has its directory before its pid file: it is not gone yet (unless it never came up). */
const STARTING_MS = 60_000;

export async function watchServed(connections: HostConnections): Promise<void> {
  const { home, hostId } = connections.host;
  for (const { daemon, serving } of await servedHere(home)) {
    if (await daemon.pid()) continue;
    if (!daemon.started() && Date.now() - Date.parse(serving.since) < STARTING_MS) continue;
    let repo;
    try {
      repo = connections.byUuid(serving.repoUuid);
    } catch {
      continue; // not reconnected (yet): its record cannot be read here
    }
    const image = await readImage(repo, serving.imageId);
    if (!image || image.served?.hostId !== hostId) {
      // Torn down, removed or served elsewhere since: nothing of it is this host's any more.
      await rm(daemon.dir, { recursive: true, force: true });
      continue;
    }
    await markServingLost(repo, serving.imageId, hostId, `its qemu-storage-daemon exited: ${await daemon.logTail()}`);
  }
}
